"""Layer helpers shared by the reader and the widgets: class colours and layer data."""

from __future__ import annotations

import re

import numpy as np

from jcas_napari.data.io import ClassInfo
from jcas_napari.data.viz import class_colours
from jcas_napari.napari.names import (
    CHANGES,
    CONFIDENCE,
    CORRECTED,
    NOISY_MASKS,
    RESULT_LAYERS,
    USER_MASKS,
)


def label_colormap(classes: ClassInfo):
    """A napari DirectLabelColormap in the dataset's own class colours, or the EndoVis-like
    part colours when it has none (0 transparent)."""
    from napari.utils.colormaps import DirectLabelColormap

    cols = class_colours(classes).astype(float) / 255
    colors = {0: np.zeros(4), None: np.zeros(4)}
    for i in range(1, classes.num_classes):
        colors[i] = np.r_[cols[i], 1.0]
    colors[classes.ignore_index] = np.array([1.0, 1.0, 1.0, 0.6])
    return DirectLabelColormap(color_dict=colors)


def changes_colormap():
    """Changed pixels in red, the rest transparent."""
    from napari.utils.colormaps import DirectLabelColormap

    return DirectLabelColormap(
        color_dict={0: np.zeros(4), None: np.zeros(4), 1: np.array([1.0, 0.15, 0.15, 1.0])}
    )


# Layers the widgets make from results (never an input to train on or to review): their
# names live in names.py with the other shared layer names.
TRUTH_KEY = "ground_truth"  # metadata flag of a layer of true masks
_TRUTH_NAME = re.compile(r"clean|truth|(?<![a-z])gt(?![a-z])")


def labels_kwargs(name: str, classes: ClassInfo, truth: bool = False, **extra) -> dict:
    """Keyword arguments for a Labels layer of class masks; ``truth`` marks true masks.

    A ``metadata`` in ``extra`` adds to the class metadata rather than replacing it, so
    that every such layer keeps its class names.
    """
    meta = {
        "class_names": list(classes.names),
        "ignore_index": classes.ignore_index,
        **extra.pop("metadata", {}),
        **({TRUTH_KEY: True} if truth else {}),
    }
    return {
        "name": name,
        "colormap": label_colormap(classes),
        "opacity": 0.55,
        "metadata": meta,
        **extra,
    }


def is_truth(layer) -> bool:
    """A layer known to hold true masks: marked so, or named so (clean, truth, gt).

    Training on it or correcting it would defeat the point (it is what the cleaning is
    measured against), so the widgets never pick it by default.
    """
    if (getattr(layer, "metadata", None) or {}).get(TRUTH_KEY):
        return True
    return _TRUTH_NAME.search(layer.name.lower()) is not None


def default_masks(layers, current: str = "", chosen: str = "") -> str | None:
    """The name of the masks to select among Labels ``layers`` (None: select none).

    ``current`` stays if it is still there, unless it is a truth layer that the user did
    not pick (``chosen``): it may be open first, as in the sample, and training on it or
    correcting it would defeat the point. Otherwise the masks the user will correct: the
    reader's user masks, then the usual names, then any layer not known to be the truth.
    """
    by_name = {lay.name: lay for lay in layers if lay.name not in RESULT_LAYERS}
    if current in by_name and (current == chosen or not is_truth(by_name[current])):
        return current
    candidates = [lay for lay in by_name.values() if not is_truth(lay)]
    for test in (
        lambda lay: lay.metadata.get("source") == "user masks",
        lambda lay: lay.name in (NOISY_MASKS, USER_MASKS),
        lambda lay: True,
    ):
        found = [lay.name for lay in candidates if test(lay)]
        if found:
            return found[0]
    return None


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
        from jcas_napari.data.decode import to_uint8_image

        # The same conversion as the file reader: a frame gives the same model input
        # whether it comes from a file or from a layer.
        arr = to_uint8_image(arr, "image layer")
    return arr


def result_layers(results, classes: ClassInfo) -> dict[str, tuple[np.ndarray, dict]]:
    """The data and layer keywords of the corrected, changes and confidence layers."""
    return {
        CORRECTED: (np.stack([r.proposed for r in results]), labels_kwargs(CORRECTED, classes)),
        # One label for all changes: a layer of hundreds of region ids took ~350 ms to
        # create (bench_gui.py). The regions themselves stay in the session for review.
        CHANGES: (
            np.stack([r.regions > 0 for r in results]).astype(np.uint8),
            {"name": CHANGES, "opacity": 0.9, "colormap": changes_colormap()},
        ),
        CONFIDENCE: (
            np.stack([r.confidence for r in results]).astype(np.float16),
            {"name": CONFIDENCE, "colormap": "magma", "visible": False, "contrast_limits": (0, 1)},
        ),
    }
