"""JCAS losses: forward-corrected CE, corrected affinity BCE, volume and consistency terms.

Shapes: B batch, C classes, (H, W) image, (h, w) affinity grid, N = h*w.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from jcas_napari.core.affinity_fused import fused_affinity_loss
from jcas_napari.core.clamps import LOG_MIN, P_MAX, P_MIN
from jcas_napari.core.config import LossWeights
from jcas_napari.core.dar import S_MIN, dar, embed, to_grid
from jcas_napari.core.model import JCASOutput
from jcas_napari.core.transitions import class_to_affinity


def corrected_ce(
    logits: torch.Tensor,
    target: torch.Tensor,
    t: torch.Tensor | None = None,
    ignore_index: int = 255,
) -> torch.Tensor:
    """Forward-corrected cross-entropy: mean over non-ignored pixels of
    ``-log clamp((softmax(logits) @ T)[target], 1e-10)``. logits [B,C,H,W], target [B,H,W].

    ``t=None`` is plain cross-entropy. A batch with no valid pixel gives 0, not NaN.
    """
    valid = target != ignore_index
    n_valid = valid.sum().clamp(min=1)
    if t is None:
        return (
            F.cross_entropy(logits, target.long(), ignore_index=ignore_index, reduction="sum")
            / n_valid
        )
    p = torch.einsum("bchw,cd->bdhw", torch.softmax(logits, 1), t)
    tgt = torch.where(valid, target.long(), torch.zeros_like(target.long()))
    p_y = p.gather(1, tgt[:, None]).squeeze(1).clamp(P_MIN, 1.0)
    return -(torch.log(p_y) * valid).sum() / n_valid


def grid_labels(
    target: torch.Tensor, grid: tuple[int, int], ignore_index: int = 255
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest-resize target [B,H,W] to the grid: labels [B,N] long and valid [B,N] bool."""
    y = F.interpolate(target[:, None].float(), size=tuple(grid), mode="nearest")
    y = y.flatten(1).long()
    return y, y != ignore_index


def _bce_rows(u_rows, u, y_rows, y, v_rows, v, t01, t11) -> torch.Tensor:
    """Sum of corrected BCE over the pairs (rows x all) of one block of grid rows."""
    s = torch.bmm(u_rows, u.transpose(1, 2)).clamp(S_MIN, 1.0)  # [B,c,N]
    p_sim = t01 + s * (t11 - t01)  # (1-S) T_A[0,1] + S T_A[1,1]: P(noisy pair similar)
    same = y_rows[:, :, None] == y[:, None, :]
    # Each log only sees the pairs it is used for, so the other branch cannot put inf (and,
    # through torch.where's backward, NaN) in the gradient. S = 1 for a dissimilar pair
    # would give log(0): cap its probability just below 1.
    log_sim = torch.log(torch.where(same, p_sim, torch.ones_like(p_sim)))
    log_dis = torch.log1p(-torch.where(same, torch.zeros_like(p_sim), p_sim).clamp(max=P_MAX))
    log_p = torch.where(same, log_sim, log_dis).clamp(min=LOG_MIN)
    pairs = v_rows[:, :, None] & v[:, None, :]
    return -(log_p * pairs).sum()


def affinity_loss(
    features: torch.Tensor,
    labels: torch.Tensor,
    valid: torch.Tensor,
    t_a: torch.Tensor | None = None,
    chunk: int = 1024,
) -> torch.Tensor:
    """Corrected affinity BCE between ``(1-S) T_A[0,1] + S T_A[1,1]`` and the noisy
    label-equality matrix ``1[y_u = y_v]``, averaged over pairs of non-ignored pixels
    (self-pairs included). features [B,D,h,w]; labels, valid [B,N]. ``t_a=None``: T_A = I.

    The reference form; training uses ``affinity_fused.fused_affinity_loss`` (the same
    value and gradients, computed in one pass without recomputation).

    Never builds the N x N x 2 stack: rows of S are computed ``chunk`` at a time and, under
    autograd with N > chunk, recomputed in backward (activation checkpointing), so peak
    memory is O(B * chunk * N) instead of O(B * N^2).
    """
    u = embed(features)
    if t_a is None:
        t01, t11 = u.new_zeros(()), u.new_ones(())
    else:
        t01, t11 = t_a[0, 1], t_a[1, 1]
    n = u.shape[1]
    total = u.new_zeros(())
    # Recomputing in backward only pays off when there is more than one block of rows.
    grad = torch.is_grad_enabled() and (u.requires_grad or t01.requires_grad) and n > chunk
    for start in range(0, n, chunk):
        sl = slice(start, start + chunk)
        args = (u[:, sl], u, labels[:, sl], labels, valid[:, sl], valid, t01, t11)
        total = total + (
            checkpoint(_bce_rows, *args, use_reentrant=False) if grad else _bce_rows(*args)
        )
    n_pairs = (valid.sum(1).to(u.dtype) ** 2).sum().clamp(min=1)
    return total / n_pairs


def volume(t_c: torch.Tensor, t_a: torch.Tensor) -> torch.Tensor:
    """VolMin regulariser log|det T_C| + log|det T_A| (minimised)."""
    return torch.linalg.slogdet(t_c).logabsdet + torch.linalg.slogdet(t_a).logabsdet


def consistency(t_c: torch.Tensor, t_a: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """MSE between the T_A implied by T_C and the prior, and the learned T_A (same order)."""
    return F.mse_loss(class_to_affinity(t_c, prior), t_a)


def level_losses(
    logits: torch.Tensor,
    features: torch.Tensor,
    target: torch.Tensor,
    grid: tuple[int, int],
    t_c: torch.Tensor | None,
    t_a: torch.Tensor | None,
    chunk: int,
    ignore_index: int = 255,
    affinity: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(class loss, affinity loss) of one level. logits [B,C,h0,w0], features [B,D,h0,w0].

    Logits and features go to the affinity grid; the class loss is the corrected CE of the
    DAR-refined and of the raw logits, both upsampled to the target size [B,H,W]. The
    affinity loss is None when ``affinity`` is False (not trained, so not computed).
    """
    size = tuple(target.shape[-2:])
    z, f = to_grid(logits, grid), to_grid(features, grid)
    refined = dar(z, f)

    def up(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=True)

    # Refined and raw logits in one batch: one upsample and one CE (sum of the two means).
    both = up(torch.cat([refined, z], 0))
    seg = 2 * corrected_ce(both, torch.cat([target, target], 0), t_c, ignore_index)
    if not affinity:
        return seg, None
    labels, valid = grid_labels(target, grid, ignore_index)
    return seg, fused_affinity_loss(f, labels, valid, t_a, chunk)


def jcas_loss(
    out: JCASOutput,
    target: torch.Tensor,
    weights: LossWeights,
    grid: tuple[int, int],
    t_c: torch.Tensor | None = None,
    t_a: torch.Tensor | None = None,
    prior: torch.Tensor | None = None,
    chunk: int = 1024,
    ignore_index: int = 255,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total JCAS loss (a scalar with grad) and its terms (detached scalar tensors).

    Stage 2 (``t_c``, ``t_a`` and ``prior`` given):
    seg2 + 0.1 seg1 + aff1 + 0.1 aff2 + 0.5 vol + 0.01 consistency (weights from config).
    Stage 1 (``t_c = t_a = None``): the same with identity T and no vol/consistency terms;
    without the affinity terms too (neither computed nor reported) when
    ``weights.warmup_affinity`` is False.
    """
    w = weights
    aff = t_c is not None or w.warmup_affinity
    seg1, aff1 = level_losses(
        out.logits[0], out.features[0], target, grid, t_c, t_a, chunk, ignore_index, aff
    )
    seg2, aff2 = level_losses(
        out.logits[1], out.features[1], target, grid, t_c, t_a, chunk, ignore_index, aff
    )
    total = w.seg2 * seg2 + w.seg1 * seg1
    terms = {"seg1": seg1, "seg2": seg2}
    if aff:
        total = total + w.aff1 * aff1 + w.aff2 * aff2
        terms.update(aff1=aff1, aff2=aff2)
    if t_c is not None:
        if t_a is None or prior is None:
            raise ValueError("stage 2 needs t_c, t_a and the class prior")
        terms["vol"] = volume(t_c, t_a)
        terms["consistency"] = consistency(t_c, t_a, prior)
        total = total + w.vol * terms["vol"] + w.consistency * terms["consistency"]
    # Detached tensors, not floats: reading a value waits for the device, and doing that
    # here, before backward, kept a GPU from running ahead of the Python thread.
    return total, {k: v.detach() for k, v in terms.items()}
