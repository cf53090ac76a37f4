"""The EndoVis 2018 layout as the challenge ships it, read in place.

::

    RELEASE/
      labels.json                      [{"name": ..., "color": [r, g, b], "classid": 0}, ...]
      seq_1/left_frames/frame000.png   RGB frames (the labelled left camera)
      seq_1/labels/frame000.png        RGB colour-coded classes (or class-id PNGs)
      seq_1/right_frames/...           not read (no labels)

``labels.json`` may sit in the release folder or in each sequence (then all copies must
agree). A folder that is itself one sequence (``left_frames/`` and ``labels/`` inside) is
read as a release of one sequence. Frame ids are ``seq_N/frameNNN``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from jcas_napari.data.dataset import Dataset, FrameRef
from jcas_napari.data.scan import index_folder
from jcas_napari.data.schema import (
    ENDOVIS_FRAMES,
    ENDOVIS_LABELS,
    IMAGE_SUFFIXES,
    MASK_SUFFIXES,
    ClassInfo,
    DatasetError,
)

LABELS_JSON = "labels.json"


def _natural(name: str) -> list:
    """Sort key that puts seq_2 before seq_10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def sequence_folders(root: Path) -> list[Path]:
    """The sequence folders of an EndoVis release (``root`` itself when it is one)."""
    if (root / ENDOVIS_FRAMES).is_dir():
        return [root]
    subs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(
        (p for p in subs if (p / ENDOVIS_FRAMES).is_dir()), key=lambda p: _natural(p.name)
    )


def is_endovis(root: Path) -> bool:
    """True if ``root`` holds ``left_frames/`` itself or in a sequence folder."""
    return root.is_dir() and bool(sequence_folders(root))


def load_labels_json(path: Path) -> ClassInfo:
    """The class map of an EndoVis ``labels.json``: names and colours ordered by classid."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(path, f"not valid JSON ({exc})") from None
    try:
        entries = sorted(
            ((int(e["classid"]), str(e["name"]), tuple(int(v) for v in e["color"])) for e in raw),
            key=lambda e: e[0],
        )
    except (TypeError, KeyError, ValueError):
        raise DatasetError(
            path, 'expected a list of {"name": ..., "color": [r, g, b], "classid": N}'
        ) from None
    ids = [e[0] for e in entries]
    if ids != list(range(len(ids))):
        raise DatasetError(path, f"class ids must be 0..{len(ids) - 1} without gaps, got {ids}")
    if any(len(e[2]) != 3 or not all(0 <= v <= 255 for v in e[2]) for e in entries):
        raise DatasetError(path, "each color must be [r, g, b] with values 0-255")
    names = tuple(e[1] for e in entries)
    palette = tuple(e[2] for e in entries)
    if not 2 <= len(names) <= 255 or len(set(names)) != len(names):
        raise DatasetError(path, f"need 2 to 255 distinct class names, got {list(names)}")
    if len(set(palette)) != len(palette):
        raise DatasetError(path, "two classes share one colour")
    return ClassInfo(names, palette=palette)


def load_class_map(path: Path) -> ClassInfo:
    """A class map from ``classes.json`` (ours) or an EndoVis ``labels.json``."""
    if not path.is_file():
        raise DatasetError(path, "file not found")
    return load_labels_json(path) if path.name == LABELS_JSON else ClassInfo.load(path)


def find_class_map(root: Path, seqs: list[Path]) -> tuple[ClassInfo, Path | None]:
    """The release's class map and the file it came from (``classes.json`` wins)."""
    for candidate in (root / "classes.json", root / LABELS_JSON, root.parent / LABELS_JSON):
        if candidate.is_file():
            return load_class_map(candidate), candidate
    per_seq = [s / LABELS_JSON for s in seqs if (s / LABELS_JSON).is_file()]
    if not per_seq:
        return ClassInfo(), None
    first = load_labels_json(per_seq[0])
    for other in per_seq[1:]:
        if load_labels_json(other) != first:
            raise DatasetError(other, f"class map differs from {per_seq[0]}")
    return first, per_seq[0]


def open_endovis(root: Path) -> Dataset:
    """Open an EndoVis release (checks pairing; no pixels are decoded)."""
    seqs = sequence_folders(root)
    classes, source = find_class_map(root, seqs)
    frames: list[FrameRef] = []
    skipped: list[str] = []
    for seq in seqs:
        name = seq.name
        if not (seq / ENDOVIS_LABELS).is_dir():
            skipped.append(f"{seq}: skipped (no {ENDOVIS_LABELS}/ folder: frames without labels)")
            continue
        images = index_folder(seq / ENDOVIS_FRAMES, IMAGE_SUFFIXES, skipped)
        labels = index_folder(seq / ENDOVIS_LABELS, MASK_SUFFIXES, skipped)
        for key, path in images.items():
            if key not in labels:
                raise DatasetError(
                    path, f"frame has no label (expected {ENDOVIS_LABELS}/{key}.png)"
                )
        for key, path in labels.items():
            if key not in images:
                raise DatasetError(path, f"label has no frame in {ENDOVIS_FRAMES}/")
        frames += [FrameRef(f"{name}/{k}", name, p, labels[k]) for k, p in images.items()]
    if not frames:
        raise DatasetError(
            root, f"EndoVis layout, but no sequence has {ENDOVIS_LABELS}/ with frames"
        )
    ds = Dataset(root, classes, frames, "endovis")
    ds.skipped = skipped
    ds.class_source = source
    return ds
