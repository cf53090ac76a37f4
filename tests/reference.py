"""Naive reference implementations, written the way the official JCAS code computes them.

Used by the tests (equality) and by benchmarks/affinity_memory.py (peak-memory baseline).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from jcas_napari.core.dar import affinity


def dense_refine(z: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """z + 1/2 (A - Abar) z with 1 - S built explicitly. z [B,C,h,w], s [B,N,N]."""
    b, c, h, w = z.shape
    zf = z.flatten(2).transpose(1, 2)
    a = s / s.sum(2, keepdim=True)
    abar = (1 - s) / (1 - s).sum(2, keepdim=True)
    out = zf + 0.5 * (a @ zf - abar @ zf)
    return out.transpose(1, 2).reshape(b, c, h, w)


def naive_affinity_loss(features, labels, valid, t_a):
    """The official form: S, the N x N x 2 stack [1-S, S] times T_A, then BCE."""
    s = affinity(features)
    stack = torch.stack([1 - s, s], dim=-1) @ t_a  # [B,N,N,2]
    y = (labels[:, :, None] == labels[:, None, :]).to(s.dtype)
    pairs = valid[:, :, None] & valid[:, None, :]
    bce = F.binary_cross_entropy(stack[..., 1], y, reduction="none")
    return (bce * pairs).sum() / pairs.sum()
