"""Resizing of frames and masks to the model's input size (numpy + PIL)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """RGB (H,W,3) uint8 -> (h,w,3) uint8, bilinear (box-filtered when shrinking)."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    shrink = image.shape[0] > h or image.shape[1] > w
    resample = Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(image).resize((w, h), resample))


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Class ids (H,W) -> (h,w) by nearest neighbour at pixel centres."""
    h, w = size
    if mask.shape == (h, w):
        return mask
    rows = ((np.arange(h) + 0.5) * mask.shape[0] / h).astype(np.intp)
    cols = ((np.arange(w) + 0.5) * mask.shape[1] / w).astype(np.intp)
    return mask[rows[:, None], cols[None, :]]
