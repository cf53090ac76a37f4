"""The fused affinity loss against the naive full-S form and ``losses.affinity_loss``."""

from __future__ import annotations

import pytest
import torch

from jcas_napari.core.affinity_fused import FusedAffinity, fused_affinity_loss
from jcas_napari.core.dar import embed
from jcas_napari.core.losses import _bce_rows, affinity_loss


def _naive_u(u, labels, valid, t01, t11):
    """The whole N x N S in one autograd graph, the BCE of ``_bce_rows``: 0-d."""
    total = _bce_rows(u, u, labels, labels, valid, valid, t01, t11)
    return total / (valid.sum(1).to(u.dtype) ** 2).sum().clamp(min=1)


def _naive(features, labels, valid, t_a):
    u = embed(features)
    return _naive_u(u, labels, valid, t_a[0, 1], t_a[1, 1])


def _case(b=2, d=5, h=4, w=5, dtype=torch.float64, seed=0, ignore=True):
    """features [B,D,h,w] (leaf), labels [B,N], valid [B,N], t_a [2,2] (leaf)."""
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(b, d, h, w, generator=g, dtype=dtype).requires_grad_()
    labels = torch.randint(0, 3, (b, h * w), generator=g)
    if ignore:  # the last image keeps every pixel: both the gathered and the whole path
        drop = torch.rand(b, h * w, generator=g) < 0.2
        drop[-1] = False
        labels[drop] = 255
    t_a = torch.tensor([[0.8, 0.2], [0.3, 0.7]], dtype=dtype, requires_grad=True)
    return feats, labels, labels != 255, t_a


def _grads(loss_fn, feats, labels, valid, t_a, **kw):
    """(value, d/dfeatures, d/dT_A) of one loss on fresh copies of the leaves."""
    f = feats.detach().clone().requires_grad_()
    t = t_a.detach().clone().requires_grad_()
    loss = loss_fn(f, labels, valid, t, **kw)
    gf, gt = torch.autograd.grad(loss, (f, t))
    return loss.detach(), gf, gt


@pytest.mark.parametrize("chunk", [1, 3, 7, 20, 64])
def test_matches_naive_and_chunked_float64(chunk):
    """N = 20: chunks 3 and 7 do not divide it, 20 and 64 are >= N."""
    case = _case()
    ref = _grads(_naive, *case)
    fused = _grads(fused_affinity_loss, *case, chunk=chunk)
    ours = _grads(affinity_loss, *case, chunk=chunk)
    for r, f, o in zip(ref, fused, ours):
        assert (f - r).abs().max() < 1e-12
        assert (f - o).abs().max() < 1e-12
    assert fused[2][0, 1] != 0 and fused[2][1, 1] != 0


def test_identity_t_a_and_no_grad_value():
    feats, labels, valid, _ = _case(seed=1)
    loss = fused_affinity_loss(feats, labels, valid, chunk=6)
    ref = affinity_loss(feats, labels, valid, chunk=6)
    (gf,) = torch.autograd.grad(loss, feats)
    (gr,) = torch.autograd.grad(ref, feats)
    assert abs(loss.item() - ref.item()) < 1e-12 and (gf - gr).abs().max() < 1e-12
    with torch.no_grad():
        assert fused_affinity_loss(feats, labels, valid, chunk=6).item() == loss.item()
    plain = fused_affinity_loss(feats.detach(), labels, valid, chunk=6)
    assert not plain.requires_grad and plain.item() == loss.item()


def test_only_t_a_requires_grad():
    feats, labels, valid, t_a = _case(seed=4)
    feats = feats.detach()
    (ours,) = torch.autograd.grad(fused_affinity_loss(feats, labels, valid, t_a, 6), t_a)
    (ref,) = torch.autograd.grad(affinity_loss(feats, labels, valid, t_a, 6), t_a)
    assert (ours - ref).abs().max() < 1e-12 and ours.abs().max() > 0


def test_gradcheck_tiny():
    feats, labels, valid, t_a = _case(b=2, d=3, h=2, w=3)
    t01 = t_a[0, 1].detach().clone().requires_grad_()
    t11 = t_a[1, 1].detach().clone().requires_grad_()

    def fn(f, a, b):
        return FusedAffinity.apply(embed(f), labels, valid, a, b, 4)

    assert torch.autograd.gradcheck(fn, (feats, t01, t11))


def _u_case(u, labels, valid, t01, t11, chunk):
    """Fused vs naive autograd directly on U [B,N,D]: max error over value and grads,
    relative to the largest entry of each."""
    leaves = [x.detach().clone().requires_grad_() for x in (u, t01, t11)]
    ref = _naive_u(leaves[0], labels, valid, leaves[1], leaves[2])
    gr = torch.autograd.grad(ref, leaves)
    leaves2 = [x.detach().clone().requires_grad_() for x in (u, t01, t11)]
    ours = FusedAffinity.apply(leaves2[0], labels, valid, leaves2[1], leaves2[2], chunk)
    go = torch.autograd.grad(ours, leaves2)
    assert torch.isfinite(ours) and all(torch.isfinite(g).all() for g in go)
    pairs = [(ours, ref), *zip(go, gr)]
    return max(((a - b).abs().max() / b.abs().max().clamp(min=1)).item() for a, b in pairs)


def test_clamps_of_s_hit():
    """Orthogonal embeddings (raw S = 0 < S_MIN), identical ones of norm > 1 (S > 1), S = 1
    exactly on a dissimilar pair (the P_MAX cap), all with their zero gradients."""
    e = torch.eye(4, dtype=torch.float64)
    u = torch.stack([e[0], e[1], e[0] * 1.1, e[0] * 1.1, e[2], e[3], e[2], -e[3]])[None]
    u = torch.cat([u, u.flip(1)], 0)  # [2,8,4]
    labels = torch.tensor([[0, 1, 0, 1, 2, 2, 1, 0]] * 2)
    valid = torch.ones_like(labels, dtype=torch.bool)
    s = u @ u.transpose(1, 2)
    assert (s > 1).any() and (s == 1).any() and (s <= 0).any()
    one, zero = torch.ones((), dtype=u.dtype), torch.zeros((), dtype=u.dtype)
    assert _u_case(u, labels, valid, zero, one, 3) < 1e-12
    assert _u_case(u, labels, valid, torch.tensor(0.1, dtype=u.dtype), one * 0.9, 5) < 1e-12


def test_log_min_clamp_hit():
    """p ~ 1e-50 on similar pairs: log p < LOG_MIN, clamped, gradient zero there."""
    feats, labels, valid, _ = _case(seed=2)
    u = embed(feats).detach()
    t01, t11 = torch.tensor(0.0, dtype=u.dtype), torch.tensor(1e-40, dtype=u.dtype)
    log_p = torch.log((u @ u.transpose(1, 2)).clamp(1e-10, 1) * t11)
    assert (log_p < -100).any() and (log_p > -100).any()  # both sides of the clamp
    assert _u_case(u, labels, valid, t01, t11, 7) < 1e-10


def test_all_ignored_is_zero():
    feats, labels, _, t_a = _case()
    valid = torch.zeros_like(labels, dtype=torch.bool)
    loss = fused_affinity_loss(feats, labels, valid, t_a, chunk=4)
    loss.backward()
    assert loss.item() == 0 and (feats.grad == 0).all() and (t_a.grad == 0).all()


def test_float32_agrees():
    case = _case(b=2, d=16, h=8, w=10, dtype=torch.float32, seed=3)
    ref = _grads(affinity_loss, *case, chunk=32)
    ours = _grads(fused_affinity_loss, *case, chunk=32)
    for r, o in zip(ref, ours):
        assert torch.allclose(o, r, rtol=1e-4, atol=1e-6)
