"""Fused corrected affinity BCE: loss and its gradient in one pass over blocks of rows of S.

Shapes: B batch, D feature channels, (h, w) the affinity grid, N = h*w, c rows per block.

``losses.affinity_loss`` keeps memory at O(B * c * N) by checkpointing: every block of S is
computed twice (forward, then again in backward under autograd). Here the forward pass
already knows everything the backward needs, because the loss is a sum of per-pair terms
whose derivative in S is closed-form. So each block computes S once and accumulates

    dL/dU = (G + G^T) U,   G[u, v] = dL/dS[u, v]   (S = U U^T before the clamp),

as ``G_blk U`` into the block's rows and ``G_blk^T U_rows`` into all rows: exactly the two
products autograd's bmm backward forms for the naive ``S = U U^T``. (G is symmetric only
up to the rounding of S, so ``2 G U`` would be a different, if close, number.) Only dL/dU
[B,N,D] and the two scalar gradients of T_A are kept for backward; no block graph is
recorded. Blocks are ``chunk`` rows of one image's non-ignored pixels, gathered first.

Every derivative follows autograd's conventions for the ops in ``losses._bce_rows``:
``clamp`` passes the gradient where ``min <= x <= max`` (bounds included), the ``P_MAX`` cap
and the ``LOG_MIN`` clamp zero the gradient of the entries they change.
"""

from __future__ import annotations

import torch

from jcas_napari.core.clamps import LOG_MIN, P_MAX
from jcas_napari.core.dar import S_MIN, embed


def _workspace(like: torch.Tensor, size: int) -> tuple[list, list]:
    """Four float and four bool flat buffers of ``size`` entries, reused by every block.

    Fresh [c,N] temporaries per block cost a page fault per 4 KiB page on CPU (large
    blocks come straight from mmap); reusing them keeps every pass in warm memory.
    """
    floats = [like.new_empty(size) for _ in range(4)]
    bools = [torch.empty(size, dtype=torch.bool, device=like.device) for _ in range(4)]
    return floats, bools


def _block(
    u_rows: torch.Tensor,
    u: torch.Tensor,
    y_rows: torch.Tensor,
    y: torch.Tensor,
    t01: torch.Tensor,
    d: torch.Tensor,
    du: torch.Tensor | None,
    rows: slice,
    work: tuple[list, list],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Corrected BCE of one block of rows of one image's valid pixels, summed, un-normalised.

    u_rows [c,D], u [M,D], y_rows [c], y [M] (labels); t01, d = t11 - t01 0-d; work from
    ``_workspace``. ``du`` [M,D] (or None: value only) receives ``G u`` in ``rows`` and
    ``G^T u_rows`` everywhere, G being d(sum of -log terms)/dS. Returns (loss sum, sum of
    dL/dp, sum of dL/dp * S), the last two 0-d: the caller forms T_A's gradients from them.
    """
    shape = (u_rows.shape[0], u.shape[0])
    size = shape[0] * shape[1]
    (s, p, x, log_p), (same, out_s, bad, cap) = ([t[:size].view(shape) for t in ts] for ts in work)
    torch.eq(y_rows[:, None], y[None, :], out=same)
    torch.mm(u_rows, u.T, out=x)
    torch.clamp(x, S_MIN, 1.0, out=s)
    torch.ne(s, x, out=out_s)  # autograd's clamp passes the gradient at the bounds too
    torch.mul(s, d, out=p).add_(t01)  # t01 + S (t11 - t01): the naive form's rounding
    torch.clamp(p, max=P_MAX, out=x).neg_().log1p_()
    torch.where(same, torch.log(p, out=log_p), x, out=log_p)
    torch.lt(log_p, LOG_MIN, out=bad)
    loss = -log_p.clamp_(min=LOG_MIN).sum()
    if du is None:
        zero = loss.new_zeros(())
        return loss, zero, zero
    # dL/dp is -1/p (same) and -d/dp log1p(-min(p, P_MAX)) = 1/(1 - p) = -1/(p - 1) below
    # the cap, 0 above it. So dL/dp = -1/x, x = p or p - 1, with x = -inf where capped.
    torch.sub(p, 1.0, out=x).masked_fill_(torch.gt(p, P_MAX, out=cap), -float("inf"))
    torch.where(same, p, x, out=x)
    x.reciprocal_().masked_fill_(bad, 0.0)  # after, so no 0 * inf = NaN
    # x = -dL/dp from here on, so the sums and G take the sign.
    g_sum, gs_sum = -x.sum(), -torch.vdot(x.flatten(), s.flatten())
    x.mul_(-d).masked_fill_(out_s, 0.0)  # G = dL/dS through the clamp
    du[rows].addmm_(x, u)
    du.addmm_(x.T, u_rows)
    return loss, g_sum, gs_sum


def fused_sum(
    u: torch.Tensor,
    labels: torch.Tensor,
    valid: torch.Tensor,
    t01: torch.Tensor,
    t11: torch.Tensor,
    chunk: int,
    want_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """Un-normalised loss sum over all valid pairs and, if ``want_grad``, its gradients.

    u [B,N,D]; labels [B,N] long; valid [B,N] bool; t01, t11 0-d. Returns (loss sum 0-d,
    dSum/dU [B,N,D] or None, dSum/dt01 0-d, dSum/dt11 0-d).

    Pairs never cross images and a pair with an ignored end adds nothing, value or
    gradient. So each image's valid pixels are gathered first and blocks are ``chunk`` rows
    of those: no pair mask at all, and [c,M] temporaries rather than [B,c,N].
    """
    n = u.shape[1]
    # t11 - t01 in the dtype of T_A, then promoted, as the naive form's arithmetic does.
    d, t01 = (t11 - t01).to(u.dtype), t01.to(u.dtype)
    du = torch.zeros_like(u) if want_grad else None
    total, g_sum, gs_sum = u.new_zeros(()), u.new_zeros(()), u.new_zeros(())
    counts = valid.sum(1).tolist()  # the one host sync: the gathered sizes
    order = torch.argsort((~valid).to(torch.uint8), dim=1, stable=True)  # valid ones first
    top = max(counts, default=0)
    work = _workspace(u, min(chunk, top) * top)
    for b, m in enumerate(counts):
        idx, full = order[b, :m], m == n
        u_b = u[b] if full else u[b].index_select(0, idx)
        y_b = labels[b] if full else labels[b].index_select(0, idx)
        du_b = None if du is None else du[b] if full else torch.zeros_like(u_b)
        for start in range(0, m, chunk):
            rows = slice(start, start + chunk)
            loss, gb, gsb = _block(u_b[rows], u_b, y_b[rows], y_b, t01, d, du_b, rows, work)
            total, g_sum, gs_sum = total + loss, g_sum + gb, gs_sum + gsb
        if du_b is not None and not full:
            du[b].index_copy_(0, idx, du_b)
    # p = t01 + S d, d = t11 - t01: dp/dt01 = 1 - S, dp/dt11 = S.
    return total, du, g_sum - gs_sum, gs_sum


class FusedAffinity(torch.autograd.Function):
    """Normalised corrected affinity BCE of embeddings U with gradients computed in forward.

    ``apply(u, labels, valid, t01, t11, chunk)``: u [B,N,D] (ReLU'd, L2-normalised, as
    ``dar.embed`` gives), labels [B,N] long, valid [B,N] bool, t01 = T_A[0,1] and
    t11 = T_A[1,1] 0-d. Returns the 0-d loss; backward returns the gradients of u, t01, t11.
    """

    @staticmethod
    def forward(
        ctx,
        u: torch.Tensor,
        labels: torch.Tensor,
        valid: torch.Tensor,
        t01: torch.Tensor,
        t11: torch.Tensor,
        chunk: int,
    ) -> torch.Tensor:
        """0-d loss; saves dL/dU [B,N,D], dL/dt01 and dL/dt11 (0-d) for backward."""
        total, du, g01, g11 = fused_sum(u, labels, valid, t01.detach(), t11.detach(), chunk, True)
        n_pairs = (valid.sum(1).to(u.dtype) ** 2).sum().clamp(min=1)
        du.div_(n_pairs)
        ctx.save_for_backward(du, (g01 / n_pairs).to(t01.dtype), (g11 / n_pairs).to(t11.dtype))
        return total / n_pairs

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """The saved gradients times grad_out (0-d); None for labels, valid and chunk."""
        du, g01, g11 = ctx.saved_tensors
        gu = du * grad_out if ctx.needs_input_grad[0] else None
        g01 = g01 * grad_out if ctx.needs_input_grad[3] else None
        g11 = g11 * grad_out if ctx.needs_input_grad[4] else None
        return gu, None, None, g01, g11, None


def fused_affinity_loss(
    features: torch.Tensor,
    labels: torch.Tensor,
    valid: torch.Tensor,
    t_a: torch.Tensor | None = None,
    chunk: int = 1024,
) -> torch.Tensor:
    """Same value and gradients as ``losses.affinity_loss``, one pass over S instead of two.

    Corrected affinity BCE between ``(1-S) T_A[0,1] + S T_A[1,1]`` and ``1[y_u = y_v]``,
    averaged over pairs of non-ignored pixels (self-pairs included). features [B,D,h,w];
    labels [B,N] long, valid [B,N] bool with N = h*w; t_a [2,2] or None (identity).
    Returns a 0-d tensor. Peak memory O(chunk * N + B * N * D): blocks are ``chunk`` rows
    of one image.

    The embedding (ReLU, L2 norm) stays under ordinary autograd; only the pairwise part is
    fused, so the gradient of U flows back through ``embed`` as usual.
    """
    u = embed(features)
    if t_a is None:
        t01, t11 = u.new_zeros(()), u.new_ones(())
    else:
        t01, t11 = t_a[0, 1], t_a[1, 1]
    needs = u.requires_grad or t01.requires_grad or t11.requires_grad
    if torch.is_grad_enabled() and needs:
        return FusedAffinity.apply(u, labels, valid, t01, t11, chunk)
    # No graph wanted: skip the gradient work (a Function's forward cannot tell).
    with torch.no_grad():
        total, _, _, _ = fused_sum(u, labels, valid, t01, t11, chunk, False)
        n_pairs = (valid.sum(1).to(u.dtype) ** 2).sum().clamp(min=1)
        return total / n_pairs
