"""Checkpoints: tensors and plain data only, written atomically, loaded with weights_only.

A checkpoint is a dict with ``format_version``, ``config`` (a plain dict), ``class_names``,
``model`` (state dict) and, depending on where it comes from, ``t_c``/``t_a`` (T matrices as
tensors), ``thresholds`` (per-class confidence thresholds calibrated on the validation
split), the optimiser states and the training position (``stage``, ``epoch``).
"""

from __future__ import annotations

import io
import os
import pickle
import re
import warnings
from pathlib import Path

import torch

from jcas_napari.core.config import Config
from jcas_napari.core.model import JCASNet
from jcas_napari.data.fsutil import checkpoint_file_problem
from jcas_napari.data.io import atomic_write_bytes

FORMAT_VERSION = 1
REQUIRED = ("format_version", "config", "class_names", "model")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""

    def __init__(self, path: os.PathLike | str, problem: str):
        self.path = Path(path)
        super().__init__(f"{path}: {problem}")


def save_checkpoint(path: os.PathLike | str, payload: dict) -> Path:
    """Write ``payload`` (with the format version added) through a temp file + os.replace."""
    buf = io.BytesIO()
    torch.save({**payload, "format_version": FORMAT_VERSION}, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: os.PathLike | str, num_classes: int | None = None) -> dict:
    """Load and check a checkpoint. Never unpickles code (``weights_only=True``).

    Raises :class:`CheckpointError` for a missing, truncated, foreign, malicious or newer
    file, or for one whose class count differs from ``num_classes``.
    """
    path = Path(path)
    problem = checkpoint_file_problem(path)
    if problem:
        raise CheckpointError(path, problem)
    try:
        with warnings.catch_warnings():  # torch warns about old pickle protocols
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            path,
            "refused: it holds Python objects, not only tensors and plain data "
            "(jcas-napari never runs code from a checkpoint)",
        ) from None
    except Exception:  # noqa: BLE001 - torch.load raises many types on bad bytes
        raise CheckpointError(
            path, "unreadable or truncated checkpoint: the file is damaged or incomplete"
        ) from None
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED):
        raise CheckpointError(path, "not a jcas-napari checkpoint (missing model/config)")
    version = ckpt["format_version"]
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            path,
            f"format version {version} is newer than this jcas-napari supports "
            f"({FORMAT_VERSION}); upgrade jcas-napari",
        )
    k = len(ckpt["class_names"])
    if num_classes is not None and k != num_classes:
        raise CheckpointError(
            path,
            f"checkpoint has {k} classes {list(ckpt['class_names'])}, the dataset has "
            f"{num_classes}",
        )
    loaded = LoadedCheckpoint(ckpt)
    loaded.path = path
    return loaded


class LoadedCheckpoint(dict):
    """A loaded checkpoint that remembers its file, so later errors can name it."""

    path: Path


def model_from_checkpoint(
    ckpt: dict, path: os.PathLike | str | None = None
) -> tuple[JCASNet, Config]:
    """Rebuild the network (weights loaded, eval mode) and its config from a checkpoint.

    Raises :class:`CheckpointError` naming the file (``path``, else the file it was loaded
    from) when the saved config is invalid or the weights do not fit the model it describes.
    """
    where = Path(path) if path is not None else getattr(ckpt, "path", Path("checkpoint"))
    try:
        cfg = Config.from_dict(ckpt["config"], "config")
        cfg.model.pretrained = None  # the weights come from the checkpoint
        net = JCASNet(len(ckpt["class_names"]), cfg.model)
    except ValueError as exc:
        raise CheckpointError(where, f"invalid saved config ({exc})") from None
    try:
        net.load_state_dict(ckpt["model"])
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise CheckpointError(where, weights_mismatch(exc)) from None
    return net.eval(), cfg


SIZE_MISMATCH = re.compile(
    r"size mismatch for ([\w.]+): copying a param with shape "
    r"torch.Size\((\[[^\]]*\])\) from checkpoint, the shape in "
    r"current model is torch.Size\((\[[^\]]*\])\)"
)


def weights_mismatch(exc: Exception) -> str:
    """One line for load_state_dict's error, which lists every differing tensor (161
    lines for a width mismatch): how many differ and the first one."""
    text = str(exc)
    sizes = SIZE_MISMATCH.findall(text)
    if sizes:
        name, saved, wanted = sizes[0]
        what = (
            f"{len(sizes)} tensors differ in shape, e.g. {name} is {saved} in the file "
            f"but {wanted} in the model its config describes"
        )
    else:  # missing or unexpected keys: their list is one long line
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        first = (lines[1:] or lines or [type(exc).__name__])[0]
        what = first if len(first) <= 160 else first[:157] + "..."
    return (
        f"the weights do not fit the model its saved config describes ({what}); the "
        "file was changed or assembled by hand"
    )


def check_checkpoint(path: os.PathLike | str, num_classes: int | None = None) -> Config:
    """Load ``path`` and rebuild its model, so a bad file fails here with one clear
    :class:`CheckpointError` and not later inside training; returns its config."""
    return model_from_checkpoint(load_checkpoint(path, num_classes), path)[1]


EXPORT_KEYS = (
    "config",
    "class_names",
    "ignore_index",
    "model",
    "t_c",
    "t_a",
    "thresholds",
    "prior",
    "t_c_anchor",
    "guard",
    "trained_on",
    "history",
    "method",
    "seed",
    "epoch",
    "stage",
)


def export_checkpoint(src: os.PathLike | str, dst: os.PathLike | str, half: bool = True) -> Path:
    """A small inference checkpoint: no optimiser state; weights in fp16 when ``half``."""
    ckpt = load_checkpoint(src)
    out = {k: ckpt[k] for k in EXPORT_KEYS if k in ckpt}
    if half:
        out["model"] = {
            k: v.half() if v.is_floating_point() else v for k, v in ckpt["model"].items()
        }
    return save_checkpoint(dst, out)
