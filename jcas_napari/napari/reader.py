"""npe2 reader: a dataset folder (images/, masks/) or a TIFF-stack pair -> layers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jcas_napari.data.io import STACK_FILES, DatasetError, open_dataset
from jcas_napari.napari.layers import labels_kwargs


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
    return None


def get_reader(path):
    """Return a reader for jcas dataset folders and stacks, else None (let others try)."""
    root = _dataset_root(path)
    return None if root is None else (lambda _: read_dataset(root))


def read_dataset(root: Path) -> list:
    """Layer data: frames (Image, T stack), masks (Labels) and, if present, masks_clean.

    A bad dataset gives a napari error notification naming the file, and no layers.
    """
    from napari.utils.notifications import show_error

    try:
        ds = open_dataset(root)
        samples = [ds[i] for i in range(len(ds))]
        shapes = {s.image.shape for s in samples}
        if len(shapes) > 1:
            raise DatasetError(root, f"frames have different sizes {sorted(shapes)[:3]}; "
                               "resize them to one size to view them as a stack")  # fmt: skip
    except DatasetError as exc:
        show_error(f"jcas-napari: {exc}")
        return [(None,)]
    images = np.stack([s.image for s in samples])
    meta = {"dataset_root": str(root), "frame_ids": ds.ids}
    layers = [(images, {"name": "frames", "rgb": True, "metadata": meta}, "image"),
              (np.stack([s.mask for s in samples]),
               labels_kwargs("masks", ds.classes, metadata={**meta, "class_names":
                             list(ds.classes.names), "ignore_index": ds.classes.ignore_index,
                             "source": "user masks"}), "labels")]  # fmt: skip
    if ds.has_clean:
        layers.append((np.stack([s.clean for s in samples]),
                       labels_kwargs("masks_clean", ds.classes, visible=False), "labels"))
    return layers
