"""Colouring of class masks for previews and reports (numpy only)."""

from __future__ import annotations

import numpy as np

# background, shaft, wrist, clasper; further classes cycle through tab10-like colours.
PART_COLOURS = np.array(
    [[0, 0, 0], [0, 190, 255], [255, 190, 0], [60, 230, 60]], dtype=np.uint8
)
_EXTRA = np.array(
    [[214, 39, 40], [148, 103, 189], [140, 86, 75], [227, 119, 194], [127, 127, 127]], np.uint8
)
IGNORE_COLOUR = np.array([255, 255, 255], np.uint8)


def palette(num_classes: int) -> np.ndarray:
    """(num_classes, 3) uint8 colours, class 0 black."""
    cols = [PART_COLOURS[i] if i < 4 else _EXTRA[(i - 4) % len(_EXTRA)] for i in range(num_classes)]
    return np.stack(cols)


def colorize(mask: np.ndarray, num_classes: int = 4, ignore_index: int = 255) -> np.ndarray:
    """(H,W) class ids -> (H,W,3) uint8 RGB; ignore pixels white, unknown ids grey."""
    lut = np.full((256, 3), 128, np.uint8)
    lut[:num_classes] = palette(num_classes)
    lut[ignore_index] = IGNORE_COLOUR
    return lut[mask]


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5, num_classes: int = 4):
    """Blend coloured foreground classes over an RGB (H,W,3) uint8 image."""
    col = colorize(mask, num_classes).astype(np.float32)
    fg = ((mask > 0) & (mask < num_classes))[..., None]
    out = np.where(fg, (1 - alpha) * image + alpha * col, image)
    return out.astype(np.uint8)
