"""What an output folder of ``jcas clean`` holds, and whether a run may write into it.

The lock that keeps two runs out of one folder, the frames an earlier (interrupted) run
finished, the identity that says whether those results still hold (the model, the input
files and the rule's settings), and the refusal to write over files jcas did not write.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jcas_napari.data.fsutil import check_output_dir
from jcas_napari.data.io import DatasetError, remove_stale_temp_files

# What ``jcas clean`` writes at the top of its output folder (besides the class map file).
OUTPUT_NAMES = (
    "masks",
    "masks.tif",
    "changes",
    "confidence",
    "scores",
    "scores.csv",
    "report.md",
    "report",
)
LOCK_NAME = ".jcas.lock"


def check_clean_output(out: os.PathLike | str, dataset) -> Path:
    """``out`` resolved, after refusing one that overlaps ``dataset`` (``check_output_dir``)
    or that holds files of the names jcas clean writes without being a jcas output folder
    (no lock file left by an earlier clean): those would be overwritten. Other files in
    ``out`` are left alone."""
    out = check_output_dir(out, dataset.root)
    if not out.is_dir() or (out / LOCK_NAME).exists():
        return out
    source = getattr(dataset, "class_source", None)
    names = OUTPUT_NAMES + ((source.name,) if source is not None else ())
    if getattr(dataset, "layout", "") == "endovis":  # its masks go to OUT/seq_N/labels/
        names += tuple(f"{seq}/labels" for seq in dataset.sequences())
    clash = [n for n in names if (out / n).exists()]
    if clash:
        raise DatasetError(
            out / clash[0],
            "exists, and this folder is not the output of an earlier jcas clean: it would "
            "be overwritten; choose an empty or new --out",
        )
    return out


def inputs_key(dataset, settings) -> str:
    """Identity of what cleaned masks depend on besides the model: the rule's settings and
    every frame's image and mask files (path, size, modification time). The check on the
    data and the video term use other frames too, so one edited mask changes it for all."""
    h = hashlib.sha256(repr(settings).encode())
    paths = [p for f in dataset.frames for p in (f.image, f.mask)]
    source = getattr(dataset, "class_source", None)
    for p in dict.fromkeys([*paths, *([source] if source is not None else [])]):
        st = Path(p).stat()
        h.update(os.fsencode(p) + f"|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def resume_state(dataset, models, out: Path, settings) -> tuple[dict, dict, dict]:
    """What an earlier run left: (its finished frames' sidecars by id, the identity each
    checkpoint's results carry, the identity of the results of each frame: those of the
    first model that lists it).

    A result's identity is its model's (``model_key``) joined with that of everything else
    it depends on (``inputs_key``): a rerun after the masks, the images or the rule's
    settings changed cleans every frame again instead of keeping stale results."""
    remove_stale_temp_files(out)  # left by a run that was killed mid-write
    inputs = inputs_key(dataset, settings)
    keys = {str(ckpt): f"{model_key(ckpt)}+{inputs}" for ckpt, _ in models}
    owner: dict[int, str] = {}
    for ckpt, idx in models:
        for i in range(len(dataset)) if idx is None else idx:
            owner.setdefault(i, keys[str(ckpt)])
    return finished_frames(out), keys, owner


def stale_note(done: dict, keys: dict) -> list[str]:
    """A note when frames an earlier run finished (``done``) are redone: their results
    carry none of the identities in ``keys`` (``resume_state``)."""
    stale = sum(row.get("model") not in keys.values() for row in done.values())
    if not stale:
        return []
    return [
        f"{stale} frames cleaned by an earlier run into this folder were cleaned again: "
        "the model, the masks, the images or the settings changed since"
    ]


def model_key(ckpt: os.PathLike | str) -> str:
    """Identity of a checkpoint: the SHA-256 of its bytes (a copy is the same model; a
    retrained file at the same path is not)."""
    path = Path(ckpt)
    if not path.is_file():
        return "missing"  # loading it will raise the clear error
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


@contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out`` (``out/.jcas.lock``) while cleaning into it: two
    runs writing one folder would mix their masks and scores. Refused, not waited for."""
    out.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; run one clean per folder
        yield
        return
    with open(out / LOCK_NAME, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatasetError(
                out,
                "another jcas clean is writing into this folder; wait "
                "for it to finish or choose another --out",
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def finished_frames(out: Path) -> dict[str, dict]:
    """Score rows of frames a previous (interrupted) run already finished, by frame id."""
    folder = out / "scores"
    if not folder.is_dir():
        return {}
    rows = {}
    for p in folder.rglob("*.json"):
        try:
            row = json.loads(p.read_text())
        except (OSError, ValueError):
            continue  # unreadable: the frame is simply done again
        rows[row["id"]] = row
    return rows
