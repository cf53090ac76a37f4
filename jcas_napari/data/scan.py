"""Listing the image files of a folder tree, following symlinked folders safely.

Shared by the dataset readers (``images/``, ``masks/``) and the EndoVis reader
(``left_frames/``, ``labels/``).
"""

from __future__ import annotations

import os
from pathlib import Path

from jcas_napari.data.schema import DatasetError


def index_folder(
    folder: Path, suffixes: tuple[str, ...], skipped: list[str] | None = None
) -> dict[str, Path]:
    """Relative path without suffix -> file, for every image file below ``folder``.

    Symlinked folders are followed (sequences are often linked in from elsewhere), each
    real folder once: a link back into a folder already scanned (a loop, or a second link
    to the same sequence) is not entered, and is reported in ``skipped``, as are hidden
    entries and files that are not images, so that nothing is left out silently.
    """
    out: dict[str, Path] = {}
    found = []
    claimed = {os.path.realpath(folder)}  # real folders scanned or about to be
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        keep = []
        for d in sorted(dirnames):
            full = os.path.join(dirpath, d)
            real = os.path.realpath(full)
            if d.startswith("."):
                _note(skipped, full, "hidden folder")
            elif real in claimed:
                _note(skipped, full, f"links to {real}, which is read once")
            else:
                claimed.add(real)
                keep.append(d)
        dirnames[:] = keep
        found += [Path(dirpath) / f for f in filenames]
    for p in sorted(found):
        if not p.is_file():
            continue
        if p.name.startswith("."):
            _note(skipped, str(p), "hidden file")
        elif p.suffix.lower() not in suffixes:
            _note(skipped, str(p), "not an image file")
        else:
            key = p.relative_to(folder).with_suffix("").as_posix()
            if key in out:
                raise DatasetError(p, f"two files for frame {key!r}: also {out[key].name}")
            out[key] = p
    return out


def _note(skipped: list[str] | None, path: str, why: str) -> None:
    if skipped is not None:
        skipped.append(f"{path}: skipped ({why})")
