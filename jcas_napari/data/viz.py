"""Colouring of class masks for previews and reports (numpy only)."""

from __future__ import annotations

import colorsys

import numpy as np

from jcas_napari.data.schema import ClassInfo

# background, shaft, wrist, clasper; then ten further distinct colours, then generated hues.
PART_COLOURS = np.array([[0, 0, 0], [0, 190, 255], [255, 190, 0], [60, 230, 60]], np.uint8)
_EXTRA = np.array(
    [
        [214, 39, 40],
        [148, 103, 189],
        [140, 86, 75],
        [227, 119, 194],
        [127, 127, 127],
        [188, 189, 34],
        [23, 190, 207],
        [255, 127, 14],
        [31, 119, 180],
        [152, 223, 138],
    ],
    np.uint8,
)
IGNORE_COLOUR = np.array([255, 255, 255], np.uint8)


def palette(num_classes: int) -> np.ndarray:
    """(num_classes, 3) uint8 colours, class 0 black, no colour used twice (nor the
    ignore colour, white)."""
    cols = [tuple(c) for c in np.concatenate([PART_COLOURS, _EXTRA])[:num_classes]]
    seen = set(cols) | {tuple(IGNORE_COLOUR)}
    step = 0
    while len(cols) < num_classes:
        # Golden-ratio hues at two lightness levels spread any number of classes apart.
        step += 1
        r, g, b = colorsys.hls_to_rgb((step * 0.618034) % 1, 0.35 + 0.3 * (step % 2), 0.85)
        c = (round(r * 255), round(g * 255), round(b * 255))
        if c not in seen:
            seen.add(c)
            cols.append(c)
    return np.array(cols, np.uint8).reshape(num_classes, 3)


def class_colours(classes: ClassInfo) -> np.ndarray:
    """(K,3) uint8: the user's own palette when the dataset has one, else :func:`palette`."""
    if classes.palette is not None:
        return np.asarray(classes.palette, np.uint8)
    return palette(classes.num_classes)


def colorize(
    mask: np.ndarray, num_classes: int = 4, ignore_index: int = 255, colours=None
) -> np.ndarray:
    """(H,W) class ids -> (H,W,3) uint8 RGB; ignore pixels white, unknown ids grey.

    ``colours`` (K,3) replaces the default :func:`palette`."""
    lut = np.full((256, 3), 128, np.uint8)
    lut[:num_classes] = palette(num_classes) if colours is None else colours
    lut[ignore_index] = IGNORE_COLOUR
    return lut[mask]


def overlay(
    image: np.ndarray, mask: np.ndarray, alpha: float = 0.5, num_classes: int = 4, colours=None
) -> np.ndarray:
    """Blend coloured foreground classes over an RGB (H,W,3) uint8 image."""
    col = colorize(mask, num_classes, colours=colours).astype(np.float32)
    fg = ((mask > 0) & (mask < num_classes))[..., None]
    out = np.where(fg, (1 - alpha) * image + alpha * col, image)
    return out.astype(np.uint8)
