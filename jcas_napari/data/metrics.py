"""Per-frame segmentation metrics on integer class masks (numpy only, no torch).

The data layer needs these (the noise models report the Dice of what they did); the
dataset-level scores built on them live in :mod:`jcas_napari.core.metrics`, which
re-exports these functions. Pixels whose ground truth is the ignore index are excluded.
"""

from __future__ import annotations

import numpy as np

from jcas_napari import IGNORE_INDEX


def confusion_matrix(
    pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> np.ndarray:
    """Counts ``C[i, j]`` = pixels with ground truth ``i`` predicted as ``j``.

    ``pred`` and ``gt`` are integer arrays of the same shape; gt pixels equal to
    ``ignore_index`` are skipped. Predictions outside ``[0, num_classes)`` are skipped too.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"shape mismatch: prediction {pred.shape} vs ground truth {gt.shape}")
    g = gt.reshape(-1).astype(np.int64)
    p = pred.reshape(-1).astype(np.int64)
    keep = (g != ignore_index) & (g < num_classes) & (p >= 0) & (p < num_classes)
    idx = g[keep] * num_classes + p[keep]
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def dice_iou_from_confusion(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class Dice and IoU from a confusion matrix; NaN where a class is absent from both."""
    tp = np.diag(cm).astype(np.float64)
    fn = cm.sum(axis=1) - tp
    fp = cm.sum(axis=0) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = 2 * tp / (2 * tp + fp + fn)
        iou = tp / (tp + fp + fn)
    return dice, iou


def per_class_dice(
    pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> dict[int, float]:
    """Dice of each class present in ``gt`` or ``pred`` of one frame (class -> Dice)."""
    dice, _ = dice_iou_from_confusion(confusion_matrix(pred, gt, num_classes, ignore_index))
    return {c: float(d) for c, d in enumerate(dice) if not np.isnan(d)}
