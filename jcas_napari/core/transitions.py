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
    """

    def __init__(self, num_states: int, init: float = -2.0):
        super().__init__()
        self.weight = nn.Parameter(torch.full((num_states, num_states), float(init)))
        self.register_buffer("eye", torch.eye(num_states), persistent=False)

    def forward(self) -> torch.Tensor:
        t = self.eye + torch.sigmoid(self.weight) * (1 - self.eye)
        return t / t.sum(1, keepdim=True)


def class_to_affinity(
    t_c: torch.Tensor, prior: torch.Tensor, code_order: bool = False
) -> torch.Tensor:
    """The 2x2 affinity transition implied by T_C [K,K] and the clean class prior pi [K].

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
    """Class frequencies [K] (numpy float64) over an iterable of (H,W) integer masks."""
    return prior_from_counts(class_counts(masks, num_classes, ignore_index), eps)


def prior_from_counts(counts: np.ndarray, eps: float = 1e-9) -> np.ndarray:
    return (counts + eps) / (counts.sum() + len(counts) * eps)
