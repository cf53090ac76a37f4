"""Segmentation metrics on integer class masks (numpy only, no torch).

Two aggregation conventions are used in the EndoVis noisy-label literature:

- ``per_image``: per frame, Dice/IoU of each foreground class *present in the ground truth*,
  then averaged over frames where the class is present (JCAS ``evaluate_DiceJac``).
- ``dataset``: one confusion matrix over all frames, Dice/IoU per class from it.

Pixels whose ground truth is the ignore index are excluded in both.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from jcas_napari import IGNORE_INDEX
from jcas_napari.data.metrics import (  # the per-frame metrics, used by the data layer too
    confusion_matrix,
    dice_iou_from_confusion,
    per_class_dice,
)

__all__ = [
    "confusion_matrix",
    "dice_iou_from_confusion",
    "per_class_dice",
    "segmentation_scores",
]


def segmentation_scores(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    num_classes: int,
    ignore_index: int = IGNORE_INDEX,
    foreground: tuple[int, ...] | None = None,
) -> dict:
    """Dice and IoU in both conventions over ``(pred, gt)`` frame pairs.

    Returns a JSON-ready dict with, for each convention, per-class values and the mean over
    the ``foreground`` classes (default: all but class 0). Per-image values only count
    frames where the class is present in the ground truth; a class never present is NaN
    (written as ``None``) and left out of the mean.
    """
    fg = tuple(range(1, num_classes)) if foreground is None else tuple(foreground)
    total = np.zeros((num_classes, num_classes), dtype=np.int64)
    sums = {"dice": np.zeros(num_classes), "iou": np.zeros(num_classes)}
    counts = np.zeros(num_classes, dtype=np.int64)
    n = 0
    for pred, gt in pairs:
        cm = confusion_matrix(pred, gt, num_classes, ignore_index)
        total += cm
        present = cm.sum(axis=1) > 0
        dice, iou = dice_iou_from_confusion(cm)
        sums["dice"][present] += dice[present]
        sums["iou"][present] += iou[present]
        counts += present
        n += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        per_image = {k: v / counts for k, v in sums.items()}
    ds_dice, ds_iou = dice_iou_from_confusion(total)
    return {
        "frames": n,
        "foreground_classes": list(fg),
        "per_image": _summary(per_image["dice"], per_image["iou"], fg),
        "dataset": _summary(ds_dice, ds_iou, fg),
    }


def _summary(dice: np.ndarray, iou: np.ndarray, fg: tuple[int, ...]) -> dict:
    def clean(x: float) -> float | None:
        return None if np.isnan(x) else float(x)

    def mean(x: np.ndarray) -> float | None:
        vals = x[list(fg)]
        vals = vals[~np.isnan(vals)]
        return float(vals.mean()) if vals.size else None

    return {
        "dice": [clean(d) for d in dice],
        "iou": [clean(i) for i in iou],
        "mean_dice": mean(dice),
        "mean_iou": mean(iou),
    }
