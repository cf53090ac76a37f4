"""Layer helpers shared by the reader and the widgets: class colours and layer data."""

from __future__ import annotations

import numpy as np

from jcas_napari.data.io import ClassInfo
from jcas_napari.data.viz import palette


def label_colormap(classes: ClassInfo):
    """A napari DirectLabelColormap with the EndoVis-like part colours (0 transparent)."""
    from napari.utils.colormaps import DirectLabelColormap

    cols = palette(classes.num_classes).astype(float) / 255
    colors = {0: np.zeros(4), None: np.zeros(4)}
    for i in range(1, classes.num_classes):
        colors[i] = np.r_[cols[i], 1.0]
    colors[classes.ignore_index] = np.array([1.0, 1.0, 1.0, 0.6])
    return DirectLabelColormap(color_dict=colors)


def changes_colormap():
    """Changed pixels in red, the rest transparent."""
    from napari.utils.colormaps import DirectLabelColormap

    return DirectLabelColormap(color_dict={0: np.zeros(4), None: np.zeros(4),
                                           1: np.array([1.0, 0.15, 0.15, 1.0])})  # fmt: skip


def labels_kwargs(name: str, classes: ClassInfo, **extra) -> dict:
    """Keyword arguments for a Labels layer of class masks."""
    return {"name": name, "colormap": label_colormap(classes), "opacity": 0.55,
            "metadata": {"class_names": list(classes.names),
                         "ignore_index": classes.ignore_index}, **extra}  # fmt: skip


def class_info_of(layer) -> ClassInfo:
    """The classes a Labels layer carries in its metadata (default: EndoVis parts)."""
    names = layer.metadata.get("class_names") if layer is not None else None
    if not names:
        return ClassInfo()
    return ClassInfo(tuple(names), int(layer.metadata.get("ignore_index", 255)))


def as_frames(image: np.ndarray) -> np.ndarray:
    """Image layer data -> (T,H,W,3) uint8 (a single RGB frame gets T = 1)."""
    arr = np.asarray(image)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.dtype != np.uint8:
        lo, hi = float(arr.min()), float(arr.max())
        arr = ((arr - lo) / max(hi - lo, 1e-9) * 255).astype(np.uint8)
    return arr
