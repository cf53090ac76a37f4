"""What the review shows on the canvas: the region under review, its box, the changes
layer coloured by decision, the view around the region, and the review keys on every
layer. Layers are touched here only from the GUI thread (the review widget's slots)."""

from __future__ import annotations

import numpy as np

CURRENT = "current region"  # Shapes layer: a box around the region under review
PIXELS = "region pixels"  # Labels layer: the region's own pixels
OUTLINE = 1.5  # the box's edge width, in frame pixels
# The region's edge in magenta: no class colour of the palette (data.viz) is magenta.
HIGHLIGHT = 254
BACKGROUND = 253  # the background class inside the region (class 0 is transparent)
HIGHLIGHT_RGBA = (1.0, 0.0, 1.0, 1.0)
CHANGE_COLOURS = {1: (1.0, 0.15, 0.15, 1.0), 2: (0.62, 0.45, 1.0, 1.0), 3: (0.6, 0.6, 0.6, 0.8)}
CHANGES_LEGEND = "changes: red undecided, violet accepted, grey rejected"


def canvas_px(viewer) -> tuple[float, float] | None:
    """The canvas size (H, W) in screen pixels, where napari exposes it."""
    size = getattr(getattr(viewer, "canvas", None), "size", None)
    return None if size is None else (float(size[0]), float(size[1]))


def centre_inside(centre, frame, canvas, zoom: float, margin: float = 0.0):
    """Centre on ``centre`` (y, x), but keep the view inside the frame where it fits.

    A region at the border then shows its surroundings, not the black outside the frame.
    ``canvas`` (H, W) pixels at ``zoom`` pixels per data unit gives the visible span; an
    axis the view spans entirely is centred on the frame. ``margin`` (data units) widens
    the frame on every side: the box around a region at the border lies just outside it.
    """
    if canvas is None:
        return centre[0], centre[1]
    out = []
    for c, size, px in zip(centre, frame, canvas):
        half = px / (2 * zoom)
        # napari puts pixel i at [i - 0.5, i + 0.5]: the frame spans [-0.5, size - 0.5].
        lo, hi = half - 0.5 - margin, size - 0.5 + margin - half
        out.append((size - 1) / 2 if lo >= hi else min(max(c, lo), hi))
    return out[0], out[1]


def box_corners(ref, ndim: int) -> np.ndarray:
    """The corners of a box just outside the region, on its frame.

    The region's pixels span [y0 - 0.5, y1 - 0.5] (bbox max exclusive); the box's edge
    (``OUTLINE`` wide, in data units, centred on the path) is drawn outside that.
    """
    y0, x0, y1, x1 = ref.bbox
    pad = 0.5 + OUTLINE / 2
    corners = np.array(
        [
            [y0 - pad, x0 - pad],
            [y0 - pad, x1 - 1 + pad],
            [y1 - 1 + pad, x1 - 1 + pad],
            [y1 - 1 + pad, x0 - pad],
        ]
    )
    return np.c_[np.full(4, ref.frame), corners] if ndim == 3 else corners


def region_pixels(state, ref, after: bool) -> tuple[tuple[slice, slice], np.ndarray]:
    """The region's box and what to draw there: its edge pixels in the highlight colour,
    its inner pixels in the classes before (original) or after (proposed) the change."""
    from scipy.ndimage import binary_erosion

    y0, x0, y1, x1 = ref.bbox
    box = (slice(y0, y1), slice(x0, x1))
    inside = state.regions[ref.frame][box] == ref.label
    inner = binary_erosion(inside)
    classes = (state.proposed if after else state.original)[ref.frame][box]
    out = np.zeros(inside.shape, np.uint8)
    out[inner] = np.where(classes[inner] == 0, BACKGROUND, classes[inner])
    out[inside & ~inner] = HIGHLIGHT
    return box, out


def pixels_colormap(classes):
    """The class colours plus the highlight and a dark see-through background."""
    from napari.utils.colormaps import DirectLabelColormap

    from jcas_napari.napari.layers import label_colormap

    colors = dict(label_colormap(classes).color_dict)
    colors[HIGHLIGHT] = np.array(HIGHLIGHT_RGBA)
    colors[BACKGROUND] = np.array([0.0, 0.0, 0.0, 0.55])
    return DirectLabelColormap(color_dict=colors)


def changes_colormap():
    """The changes layer during a review: undecided, accepted and rejected regions."""
    from napari.utils.colormaps import DirectLabelColormap

    colors = {0: np.zeros(4), None: np.zeros(4)}
    colors.update({k: np.array(v) for k, v in CHANGE_COLOURS.items()})
    return DirectLabelColormap(color_dict=colors)


class KeyBinder:
    """The review keys on the viewer and on every layer while a review runs.

    A layer's own keymap wins over the viewer's (napari#7302): with the user's masks
    selected, P switched them into paint mode and Ctrl+Z undid their paint. Binding the
    keys on each layer (the anchors' workaround) makes them the review's whatever layer
    is selected; ``release`` gives every layer its own keys back.
    """

    def __init__(self, viewer, handlers: dict) -> None:
        self.viewer, self.handlers = viewer, handlers
        self.bound: list = []
        for key, handler in handlers.items():
            viewer.bind_key(key, handler, overwrite=True)

    def bind(self, *_) -> None:
        """Bind the keys on every layer not yet bound (call on each layer insert)."""
        for layer in self.viewer.layers:
            if not any(layer is b for b in self.bound):
                for key, handler in self.handlers.items():
                    layer.bind_key(key, handler, overwrite=True)
                self.bound.append(layer)

    def release(self) -> None:
        """Unbind the keys from the layers (the viewer keeps them: harmless when idle)."""
        for layer in self.bound:
            for key in self.handlers:
                layer.bind_key(key, None)  # None unbinds (and ignores a key not bound)
        self.bound = []
