"""Held-out validation: agreement with the noisy masks, a T estimate, and the weak-model guard.

Everything here uses only the **noisy** masks of frames the model did not train on (clean
masks, when present, are scored for information only). Three things come out:

- ``val_noisy_acc``, the model-selection score (see ``core.train``);
- ``t_anchor``: T_C estimated from the model's noisy posterior at anchor pixels
  (``transitions.anchor_estimate``);
- the guard: the mean negative log-likelihood of the held-out noisy labels under the model's
  noisy posterior ``q T``, against the same under the class frequencies alone. A model that
  does not predict held-out labels better than the class frequencies knows nothing about
  these images, and must not propose changes (``val_gain <= 0``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from jcas_napari.core.config import Config
from jcas_napari.core.infer import predict, to_tensor
from jcas_napari.core.metrics import confusion_matrix, dice_iou_from_confusion
from jcas_napari.core.model import JCASNet
from jcas_napari.core.transitions import anchor_estimate, anchor_support
from jcas_napari.data.resize import resize_image, resize_mask

NLL_FLOOR = 1e-6
SAMPLE_STRIDE = 2  # every 2nd pixel in y and x: 1/4 of the pixels is plenty for K x K numbers


@dataclass
class Validation:
    """What one pass over held-out frames measured."""

    metrics: dict[str, float]
    t_anchor: np.ndarray  # [K,K] anchor-point estimate of T_C
    thresholds: np.ndarray  # [K] mean p_k over pixels labelled k (kept for reports)
    anchor_seen: np.ndarray  # [K] bool: rows of t_anchor estimated, not the identity default


def _miou(cm: np.ndarray) -> float:
    iou = dice_iou_from_confusion(cm)[1][1:]
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0


def _load(dataset: Sequence, batch: Sequence[int], size: tuple[int, int], device) -> tuple:
    samples = [dataset[i] for i in batch]
    x = to_tensor(np.stack([resize_image(s.image, size) for s in samples]), device)
    y = np.stack([resize_mask(s.mask, size) for s in samples]).astype(np.int64)
    clean = [None if s.clean is None else resize_mask(s.clean, size) for s in samples]
    return x, y, clean


@torch.no_grad()
def validate(
    net: JCASNet,
    cfg: Config,
    dataset: Sequence,
    indices: Sequence[int],
    num_classes: int,
    device: torch.device,
    ignore_index: int = 255,
    refine: bool = True,
    t_c: np.ndarray | None = None,
    noisy_prior: np.ndarray | None = None,
) -> Validation:
    """Score the model on held-out ``indices``. ``t_c`` [K,K] maps its output to the noisy
    labels (None: the output already is the noisy posterior, as after stage 1 or for CE);
    ``noisy_prior`` [K] is the guard's reference (default: the held-out label frequencies)."""
    was_training = net.training
    net.eval()
    k, size = num_classes, (cfg.input.height, cfg.input.width)
    cm_noisy = np.zeros((k, k), np.int64)
    cm_clean = np.zeros_like(cm_noisy)
    has_clean, labels, clean_samples = True, [], []
    for start in range(0, len(indices), 8):
        x, y, clean = _load(dataset, indices[start : start + 8], size, device)
        q = predict(net, x, cfg, refine=refine).cpu().numpy()
        pred = q.argmax(1)  # the clean-class prediction, scored against the noisy labels
        cm_noisy += confusion_matrix(pred, y, k, ignore_index)
        for j, c in enumerate(clean):
            has_clean = has_clean and c is not None
            if c is not None:
                cm_clean += confusion_matrix(pred[j], c, k, ignore_index)
        s = np.s_[:, :, ::SAMPLE_STRIDE, ::SAMPLE_STRIDE]
        clean_samples.append(q[s].transpose(0, 2, 3, 1).reshape(-1, k))
        labels.append(y[s[0], s[2], s[3]].reshape(-1))
    net.train(was_training)
    q, lab = np.concatenate(clean_samples), np.concatenate(labels)
    keep = lab != ignore_index
    q, lab = q[keep], lab[keep]
    temp = fit_temperature(q, lab, t_c)
    probs = noisy_posterior_flat(sharpen(q, temp), t_c)  # calibrated noisy posterior [N,K]
    metrics = {
        "val_noisy_acc": float(np.trace(cm_noisy) / max(cm_noisy.sum(), 1)),
        "val_noisy_miou": _miou(cm_noisy),
    }
    if has_clean and len(indices):
        metrics["val_clean_miou"] = _miou(cm_clean)
    metrics.update(guard_scores(probs, lab, k, noisy_prior))
    counts = np.bincount(lab, minlength=k)[:k]
    sums = np.array([probs[lab == c, c].sum() for c in range(k)])
    thresholds = np.where(counts > 0, sums / np.maximum(counts, 1), 0.5)
    metrics["temperature"] = temp
    return Validation(metrics, anchor_estimate(probs), thresholds, anchor_support(probs))


TEMPERATURES = np.exp(np.linspace(np.log(0.2), np.log(10.0), 41))


def sharpen(q: np.ndarray, temperature: float, axis: int = -1) -> np.ndarray:
    """softmax(log q / temperature) along ``axis``: temperature scaling of probabilities."""
    z = np.log(np.maximum(q, 1e-12)) / temperature
    z -= z.max(axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis, keepdims=True)


def noisy_posterior_flat(q: np.ndarray, t_c: np.ndarray | None) -> np.ndarray:
    """[N,K] clean-class probabilities -> noisy posterior [N,K]."""
    return q if t_c is None else q @ np.asarray(t_c, q.dtype)


def fit_temperature(q: np.ndarray, labels: np.ndarray, t_c: np.ndarray | None) -> float:
    """The temperature (grid search, 0.2-10) that minimises the NLL of the held-out noisy
    ``labels`` [N] under ``sharpen(q) T``; q [N,K]. Networks trained for a few epochs
    on noisy labels are over-confident, and anchor points need calibrated posteriors."""
    if len(labels) == 0:
        return 1.0
    rows = np.arange(len(labels))
    nll = [
        -np.log(
            np.maximum(noisy_posterior_flat(sharpen(q, t), t_c)[rows, labels], NLL_FLOOR)
        ).mean()
        for t in TEMPERATURES
    ]
    return float(TEMPERATURES[int(np.argmin(nll))])


def guard_scores(
    probs: np.ndarray, labels: np.ndarray, num_classes: int, prior: np.ndarray | None = None
) -> dict[str, float]:
    """Held-out NLL of the noisy ``labels`` [N] under the model's ``probs`` [N,K], under the
    class ``prior`` [K] alone, and the relative gain ``1 - nll / prior_nll``."""
    if len(labels) == 0:
        return {"val_nll": float("nan"), "prior_nll": float("nan"), "val_gain": float("nan")}
    if prior is None:
        prior = np.bincount(labels, minlength=num_classes)[:num_classes] / len(labels)
    p_lab = probs[np.arange(len(labels)), labels]
    nll = float(-np.log(np.maximum(p_lab, NLL_FLOOR)).mean())
    prior_nll = float(-np.log(np.maximum(np.asarray(prior)[labels], NLL_FLOOR)).mean())
    return {"val_nll": nll, "prior_nll": prior_nll, "val_gain": 1 - nll / max(prior_nll, 1e-12)}
