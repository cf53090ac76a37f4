"""npe2 reader: a dataset folder (images/, masks/), a TIFF-stack pair or an EndoVis 2018
release (seq_N/left_frames, seq_N/labels) -> layers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jcas_napari.data.endovis import is_endovis
from jcas_napari.data.io import STACK_FILES, DatasetError, open_dataset
from jcas_napari.napari.layers import labels_kwargs
from jcas_napari.napari.names import FRAMES, TRUTH_FILE_MASKS, USER_MASKS
from jcas_napari.napari.runtime import notify


def _dataset_root(path) -> Path | None:
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    if p.is_file() and p.name in (STACK_FILES["image"], STACK_FILES["mask"]):
        return p.parent
    if p.is_dir() and ((p / "images").is_dir() or (p / STACK_FILES["image"]).exists()):
        return p
    return p if is_endovis(p) else None


def get_reader(path):
    """Return a reader for jcas dataset folders and stacks, else None (let others try)."""
    root = _dataset_root(path)
    return None if root is None else (lambda _: read_dataset(root))


def _stacks(ds) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Frames (T,H,W,3), masks (T,H,W) and clean masks or None, filled in place.

    The arrays are allocated once and filled frame by frame, so a dataset takes its own
    size in memory, not twice that (a list of frames, then a stacked copy).
    """
    s = ds[0]
    n, size = len(ds), s.image.shape
    images = np.empty((n, *size), np.uint8)
    masks = np.empty((n, *size[:2]), np.uint8)
    clean = np.empty_like(masks) if ds.has_clean else None
    for i in range(n):
        if i:
            s = None  # free the previous frame before decoding the next one
            s = ds[i]
        if s.image.shape != size:
            raise DatasetError(
                ds.frames[i].image,
                f"frame size {s.image.shape[:2]} differs "
                f"from the first frame's {size[:2]}; resize the frames to one "
                "size to view them as a stack",
            )
        images[i], masks[i] = s.image, s.mask
        if clean is not None:
            clean[i] = s.clean
    return images, masks, clean


def read_dataset(root: Path) -> list:
    """Layer data: frames (Image, T stack), masks_clean if present, masks (Labels) on top.

    A bad dataset gives a napari error notification naming the file, and no layers.
    """
    try:
        ds = open_dataset(root)
        images, masks, clean = _stacks(ds)
    except DatasetError as exc:
        notify("error", str(exc))
        return [(None,)]
    meta = {"dataset_root": str(root), "frame_ids": ds.ids}
    layers = [
        (images, {"name": FRAMES, "rgb": True, "metadata": meta}, "image"),
        (
            masks,
            labels_kwargs(
                USER_MASKS,
                ds.classes,
                metadata={
                    **meta,
                    "class_names": list(ds.classes.names),
                    "ignore_index": ds.classes.ignore_index,
                    "source": "user masks",
                },
            ),
            "labels",
        ),
    ]
    if clean is not None:
        # Below the user's masks: napari selects the last layer added, and a selected
        # hidden truth layer is what a brush stroke would edit.
        truth = labels_kwargs(TRUTH_FILE_MASKS, ds.classes, truth=True, visible=False)
        layers.insert(1, (clean, truth, "labels"))
    return layers
