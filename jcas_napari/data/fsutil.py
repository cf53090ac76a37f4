"""Filesystem helpers shared by the data and core layers: atomic writes, stale temp files.

Writes go through a temporary file beside the target, ``fsync`` and ``os.replace``, so a
killed writer never leaves a half-written file under the real name, only a hidden
``.<name>.*.tmp`` that :func:`remove_stale_temp_files` clears. A user's masks (a dataset's
``masks/`` folder or ``masks.tif``) are never overwritten. This module sits just above
:mod:`jcas_napari.data.schema` (for the layout names and :class:`DatasetError`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from jcas_napari.data.schema import (
    ENDOVIS_FRAMES,
    ENDOVIS_LABELS,
    IMAGES_DIR,
    MASKS_DIR,
    STACK_FILES,
    DatasetError,
)

# Read once at import (os.umask can only be read by setting it, which is not thread-safe).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _is_user_mask_file(path: Path) -> bool:
    """True if ``path`` lies in the ``masks/`` folder (or is ``masks.tif``) of a dataset,
    or in the ``labels/`` folder of an EndoVis sequence."""
    path = path.resolve()
    if path.name == STACK_FILES["mask"] and (path.parent / STACK_FILES["image"]).exists():
        return True
    for parent in path.parents:
        if parent.name == MASKS_DIR and (parent.parent / IMAGES_DIR).is_dir():
            return True
        if parent.name == ENDOVIS_LABELS and (parent.parent / ENDOVIS_FRAMES).is_dir():
            return True
    return False


def atomic_write_bytes(path: os.PathLike | str, data: bytes, *, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``.

    Refuses (``DatasetError``) to replace an existing file in a dataset's ``masks/``, and any
    existing file when ``overwrite`` is False.
    """
    path = Path(path)
    if path.exists():
        if _is_user_mask_file(path):
            raise DatasetError(path, "refusing to overwrite a user's mask; write to a new folder")
        if not overwrite:
            raise DatasetError(path, "file exists; refusing to overwrite")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise DatasetError(path, f"cannot write ({exc.strerror or exc})") from None
    try:
        # mkstemp creates 0600 files; give outputs the usual permissions instead.
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        # Disk full, quota, read-only: one line that names the file being written.
        raise DatasetError(path, f"cannot write ({exc.strerror or exc})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def remove_stale_temp_files(folder: os.PathLike | str) -> int:
    """Delete the temporary files that a killed writer left below ``folder`` (the
    ``.<name>.*.tmp`` files of :func:`atomic_write_bytes`); returns how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    stale = [p for p in folder.rglob(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def checkpoint_file_problem(path: os.PathLike | str) -> str | None:
    """Why ``path`` cannot be a PyTorch checkpoint, from its first bytes; None if it may be.

    A cheap look that needs no torch, so the GUI can refuse a wrong file before starting a
    worker: ``torch.save`` writes a zip archive, and torch < 1.6 a bare pickle (byte 0x80).
    A truncated archive passes; loading it says so.
    """
    path = Path(path)
    if path.is_dir():
        return "is a folder, not a checkpoint file"
    if not path.is_file():
        return "checkpoint file not found"
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return None
    return "not a PyTorch checkpoint file"


def check_output_dir(out: os.PathLike | str, dataset_root: os.PathLike | str) -> Path:
    """Refuse an output folder that is, lies inside, or contains the input dataset.

    Both paths are resolved first, so a symlink or ``..`` cannot hide the overlap. An
    output that contains the dataset is refused too: the writers clean up stale temporary
    files below the output folder and write fixed names (masks/, run/) into it.
    """
    out, root = Path(out).resolve(), Path(dataset_root).resolve()
    if out == root or root in out.parents:
        raise DatasetError(
            out, f"output folder is inside the input dataset {root}; choose a folder outside it"
        )
    if out in root.parents:
        raise DatasetError(
            out, f"output folder contains the input dataset {root}; choose a folder outside it"
        )
    return out
