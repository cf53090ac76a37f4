"""The dataset format: folder and file names, ``classes.json`` and the dataset error.

Layout (see README, "Dataset format")::

    DATASET/
      classes.json                        optional: names, ignore_index, palette
      images/<sequence>/<frame>.png       RGB uint8 (.png, .jpg, .jpeg, .tif, .tiff)
      masks/<sequence>/<frame>.png        uint8 class ids: the user's (possibly noisy) masks
      masks_clean/<sequence>/<frame>.png  optional ground truth, used for evaluation only

The sequence folders may be left out (flat layout). A dataset may instead be two TIFF
stacks, ``images.tif`` (T,H,W,3) and ``masks.tif`` (T,H,W), plus ``masks_clean.tif``.

Every problem raises :class:`DatasetError` with a one-line message that starts with the
offending path. This module is the bottom of :mod:`jcas_napari.data`: it imports nothing
else from the package but the root constants.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from jcas_napari import ENDOVIS_PART_CLASSES, IGNORE_INDEX

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
MASK_SUFFIXES = (".png", ".tif", ".tiff")
TIFF_SUFFIXES = (".tif", ".tiff")
IMAGES_DIR, MASKS_DIR, CLEAN_DIR = "images", "masks", "masks_clean"
ENDOVIS_FRAMES, ENDOVIS_LABELS = "left_frames", "labels"  # seq_N/left_frames, seq_N/labels
STACK_FILES = {"image": "images.tif", "mask": "masks.tif", "clean": "masks_clean.tif"}
NO_PALETTE = (
    "RGB mask but no class colours are known: add a palette to classes.json "
    "(or a labels.json class map), or save class ids"
)


class DatasetError(ValueError):
    """A problem with a dataset on disk; the message names the file and the problem."""

    def __init__(self, path: os.PathLike | str, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class ClassInfo:
    """Class names, the ignore index and an optional RGB palette (one colour per class)."""

    names: tuple[str, ...] = ENDOVIS_PART_CLASSES
    ignore_index: int = IGNORE_INDEX
    palette: tuple[tuple[int, int, int], ...] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def to_json(self) -> dict:
        out: dict = {"names": list(self.names), "ignore_index": self.ignore_index}
        if self.palette is not None:
            out["palette"] = [list(c) for c in self.palette]
        return out

    @classmethod
    def load(cls, path: os.PathLike | str) -> ClassInfo:
        """Read ``classes.json``; a missing file gives the 4 EndoVis part classes."""
        path = Path(path)
        if not path.exists():
            return cls()
        try:
            raw = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DatasetError(path, f"not valid JSON ({exc})") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("names"), list):
            raise DatasetError(path, 'expected {"names": [...], "ignore_index": 255}')
        names = tuple(str(n) for n in raw["names"])
        ignore = int(raw.get("ignore_index", IGNORE_INDEX))
        if not 2 <= len(names) <= 255 or len(set(names)) != len(names):
            raise DatasetError(path, f"need 2 to 255 distinct class names, got {list(names)}")
        if ignore < len(names) or ignore > 255:
            raise DatasetError(path, f"ignore_index {ignore} must be in [{len(names)}, 255]")
        palette = raw.get("palette")
        if palette is not None:
            try:
                palette = tuple(tuple(int(v) for v in c) for c in palette)
            except (TypeError, ValueError):
                palette = ()
            if len(palette) != len(names) or any(len(c) != 3 for c in palette):
                raise DatasetError(path, f"palette needs one [r, g, b] per class ({len(names)})")
            if len(set(palette)) != len(palette):
                raise DatasetError(path, "palette colours must be distinct")
        return cls(names, ignore, palette)
