"""Noise transition matrices T_C (K x K) and T_A (2 x 2), and the T_C -> T_A map.

Conventions (everywhere in jcas-napari): ``T[i, j] = P(noisy j | clean i)``, rows sum to 1.
Affinity states: **0 = dissimilar, 1 = similar**.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class TransitionMatrix(nn.Module):
    """T = row-normalise(I + sigmoid(W) * (1 - I)) (VolMinNet parameterisation).

    ``W`` starts at ``init`` everywhere, so at init the diagonal dominates: for K=4 and
    init -2 the diagonal is 0.737 and the rest 0.088. Diagonal entries of W get no gradient.
    ``matrix`` starts it at that T instead (a data-driven start, see ``anchor_estimate``).
    """

    def __init__(self, num_states: int, init: float = -2.0, matrix: np.ndarray | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.full((num_states, num_states), float(init)))
        self.register_buffer("eye", torch.eye(num_states), persistent=False)
        if matrix is not None:
            with torch.no_grad():
                self.weight.copy_(torch.as_tensor(matrix_to_weight(matrix)))

    def forward(self) -> torch.Tensor:
        t = self.eye + torch.sigmoid(self.weight) * (1 - self.eye)
        return t / t.sum(1, keepdim=True)


def class_to_affinity(
    t_c: torch.Tensor, prior: torch.Tensor, code_order: bool = False
) -> torch.Tensor:
    """The 2x2 affinity transition implied by T_C [K,K] and a class prior pi [K].

    The derivation draws clean classes from pi; the official code (and stage-2 training
    here) passes the **noisy** label prior, as only noisy labels are known. For a
    class-symmetric T_C the prior cancels.

    Two pixels draw clean classes i, m independently from pi; each flips through T_C. With
    G = T_C T_C^T and a = sum pi_i^2:

    - P(clean same, noisy same)      v_ss = sum_i pi_i^2 G_ii
    - P(clean same, noisy diff)      v_sd = a - v_ss
    - P(clean diff, noisy same)      v_ds = pi^T G pi - v_ss
    - P(clean diff, noisy diff)      v_dd = 1 - a - v_ds

    Returns ``[[v_dd, v_ds] / (1 - a), [v_sd, v_ss] / a]``: row = clean state, column =
    noisy state, 0 = dissimilar, 1 = similar, the same order as T_A.
    ``code_order=True`` returns the official code's order (0 = similar), which its
    consistency loss compared with a T_A in the other order; kept only for reproduction.

    The prior is mixed with 1e-4 of the uniform distribution and the sums run in float64,
    so a prior dominated by one class (a = 1 in float32) still gives a finite matrix.
    """
    dtype = t_c.dtype
    t_c = t_c.double()
    prior = prior.to(t_c)
    prior = 0.9999 * prior / prior.sum() + 1e-4 / prior.numel()
    g = t_c @ t_c.T
    a = (prior**2).sum()
    v_ss = (prior**2 * torch.diagonal(g)).sum()
    v_sd = a - v_ss
    v_ds = prior @ g @ prior - v_ss
    v_dd = (1 - a) - v_ds
    if code_order:
        rows = [torch.stack([v_ss, v_sd]) / a, torch.stack([v_ds, v_dd]) / (1 - a)]
    else:
        rows = [torch.stack([v_dd, v_ds]) / (1 - a), torch.stack([v_sd, v_ss]) / a]
    return torch.stack(rows).to(dtype)


def class_counts(masks, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """Pixel count per class [K] (float64) over an iterable of (H,W) integer masks."""
    counts = np.zeros(num_classes, np.float64)
    for m in masks:
        m = np.asarray(m)
        counts += np.bincount(m[m != ignore_index].ravel(), minlength=num_classes)[:num_classes]
    return counts


def class_prior(masks, num_classes: int, ignore_index: int = 255, eps: float = 1e-9):
    """Class frequencies [K] (numpy float64) over an iterable of (H,W) integer masks: the
    **noisy** label prior when the masks are the user's (``clean_prior_from_noisy``
    turns it into the clean one given T)."""
    return prior_from_counts(class_counts(masks, num_classes, ignore_index), eps)


def prior_from_counts(counts: np.ndarray, eps: float = 1e-9) -> np.ndarray:
    return (counts + eps) / (counts.sum() + len(counts) * eps)


def matrix_to_weight(t: np.ndarray, floor: float = 1e-3, ceil: float = 0.99) -> np.ndarray:
    """The W [K,K] for which ``TransitionMatrix`` gives ``t`` [K,K] (as closely as it can).

    Row i of T is (sigma(W_ij))_j / (1 + sum_j sigma(W_ij)) with a 1 on the diagonal, so
    sigma(W_ij) = T_ij / T_ii. Ratios are clipped to [floor, ceil]: the parametrisation only
    holds matrices whose diagonal dominates each row entry by entry.
    """
    t = np.asarray(t, np.float64)
    ratio = np.clip(t / np.maximum(np.diag(t)[:, None], 1e-12), floor, ceil)
    w = np.log(ratio) - np.log1p(-ratio)
    np.fill_diagonal(w, 0.0)
    return w


def anchor_support(probs: np.ndarray, min_pixels: int = 50) -> np.ndarray:
    """[K] bool: the classes that are the argmax of at least ``min_pixels`` of ``probs``
    [N,K], enough to estimate their row of T at anchor points."""
    k = probs.shape[1]
    return np.bincount(probs.argmax(1), minlength=k)[:k] >= min_pixels


def anchor_estimate(probs: np.ndarray, quantile: float = 0.9, min_pixels: int = 50) -> np.ndarray:
    """Estimate T [K,K] from a model's **noisy** posterior on held-out pixels [N,K].

    Anchor points (Patrini et al., 2017): where a pixel surely belongs to clean class i,
    the noisy posterior is row i of T. Among the pixels whose argmax is i, those with p_i
    at or above the ``quantile`` of p_i are taken as anchors of i, and row i is their mean
    posterior. A class with fewer than ``min_pixels`` candidates (``anchor_support``) keeps
    the identity row: with no evidence, assume its labels are right (the conservative
    choice for cleaning; a start for learning fills it with ``fill_unseen_rows``).
    """
    probs = np.asarray(probs, np.float64)
    k = probs.shape[1]
    t = np.eye(k)
    arg = probs.argmax(1)
    for i in np.flatnonzero(anchor_support(probs, min_pixels)):
        cand = probs[arg == i]
        anchors = cand[cand[:, i] >= np.quantile(cand[:, i], quantile)]
        t[i] = anchors.mean(0)
    return t / t.sum(1, keepdims=True)


def fill_unseen_rows(t: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """T [K,K] whose rows without evidence (``seen`` [K] False) take the mean noise of the
    rows with evidence: their mean diagonal, the rest spread evenly.

    For the **start** of learning T: an identity row sits where T's parametrisation
    saturates (``matrix_to_weight`` clips T_ij / T_ii at 1e-3, a weight of -6.9), and
    Adam moves a weight about its learning rate per step, so in a short run such a row
    never learns (benchmark: learned rows still at the identity, 0.5 off the truth). A row
    as noisy as the others starts where every entry can move either way. (Where the mean
    diagonal is under 1/K the parametrisation cannot hold such a row: it starts at its
    nearest, off-diagonal entries at 0.99 of the diagonal.)
    """
    t = np.array(t, np.float64)
    seen = np.asarray(seen, bool)
    k = len(t)
    if seen.all() or not seen.any():
        return t
    diag = float(np.diag(t)[seen].mean())
    for i in np.flatnonzero(~seen):
        t[i] = (1 - diag) / (k - 1)
        t[i, i] = diag
    return t


def clean_prior_from_noisy(noisy_prior: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Clean class prior [K] from the noisy one: pi_noisy = pi_clean T, solved and clipped."""
    try:
        p = np.linalg.solve(np.asarray(t, np.float64).T, np.asarray(noisy_prior, np.float64))
    except np.linalg.LinAlgError:
        p = np.asarray(noisy_prior, np.float64)
    p = np.clip(p, 0, None)
    return p / p.sum() if p.sum() > 0 else np.full(len(p), 1 / len(p))


def noise_rate(t: np.ndarray, clean_prior: np.ndarray) -> float:
    """Share of pixels whose label differs from the truth that T [K,K] and pi [K] imply."""
    t = np.asarray(t, np.float64)
    return float(np.clip(np.asarray(clean_prior) @ (1 - np.diag(t)), 0.0, 1.0))


def label_signal(t: np.ndarray, clean_prior: np.ndarray) -> float:
    """How much a label tells about its pixel's class, over pixels: sum_i pi_i (T_ii -
    max_{j != i} T_ij) for T [K,K] and pi [K]. 1 for clean labels, 1 - rK/(K-1) for
    symmetric flips at rate r, 0 or less where a wrong class is as likely as the right one.
    The cross-entropy pull towards a pixel's true class scales with this margin."""
    t = np.asarray(t, np.float64)
    off = t - np.diag(np.full(len(t), np.inf))
    return float(np.asarray(clean_prior, np.float64) @ (np.diag(t) - off.max(1)))


def backward_correct(noisy_probs: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Clean posterior [K,...] from a noisy posterior [K,...]: solve p_clean T = p_noisy,
    clip at 0 and renormalise (backward correction, for models trained without T)."""
    k = noisy_probs.shape[0]
    inv = np.linalg.pinv(np.asarray(t, np.float64)).astype(np.float32)
    flat = noisy_probs.reshape(k, -1)
    p = np.clip(inv.T @ flat, 0, None)
    p /= np.maximum(p.sum(0, keepdims=True), 1e-12)
    return p.reshape(noisy_probs.shape).astype(np.float32)


def confident_joint_estimate(q: np.ndarray, labels: np.ndarray, min_pixels: int = 50) -> np.ndarray:
    """T [K,K] from a model's clean-class probabilities q [N,K] and the given labels [N] of
    the frames to clean (confident learning, Northcutt et al. 2021).

    A pixel counts for (clean j, given l) when q_j reaches class j's threshold t_j (the mean
    q_j over pixels labelled j) and j is its argmax. Row j is the distribution of the given
    labels over the pixels confidently in j. Where the model errs, its errors count as
    label noise here, which makes the estimate err towards more noise only where the model
    is confidently wrong; a class with fewer than ``min_pixels`` keeps the identity row.
    """
    k = q.shape[1]
    t = np.eye(k)
    thr = np.array([q[labels == j, j].mean() if (labels == j).any() else 1.0 for j in range(k)])
    arg = q.argmax(1)
    sure = q[np.arange(len(q)), arg] >= thr[arg]
    for j in range(k):
        sel = sure & (arg == j)
        if sel.sum() >= min_pixels:
            t[j] = np.bincount(labels[sel], minlength=k)[:k] / sel.sum()
    return t
