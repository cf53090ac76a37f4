"""Transition matrices, the T_C -> T_A map, DAR and the losses, each against a reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from reference import dense_refine, naive_affinity_loss

from jcas_napari.core.dar import affinity, dar, pixel_affinity, refine, refine_chunked
from jcas_napari.core.losses import affinity_loss, corrected_ce, grid_labels, jcas_loss
from jcas_napari.core.transitions import TransitionMatrix, class_prior, class_to_affinity

torch.manual_seed(0)


# ------------------------------------------------------------------ transition matrices


def test_transition_rows_sum_to_one_and_grads_reach_w():
    tm = TransitionMatrix(4)
    t = tm()
    torch.testing.assert_close(t.sum(1), torch.ones(4))
    assert (torch.diagonal(t) > t.max(1).values - 1e-7).all()
    assert torch.diagonal(t)[0].item() == pytest.approx(0.7366, abs=1e-4)
    assert t[0, 1].item() == pytest.approx(0.0878, abs=1e-4)
    (t * torch.arange(16.0).reshape(4, 4)).sum().backward()
    g = tm.weight.grad
    assert torch.isfinite(g).all() and (g - torch.diag(torch.diagonal(g))).abs().sum() > 0
    assert torch.diagonal(g).abs().max() == 0  # the diagonal of W is not used
    ta = TransitionMatrix(2)()
    torch.testing.assert_close(
        ta, torch.tensor([[0.8935, 0.1065], [0.1065, 0.8935]]), atol=1e-4, rtol=0
    )


def test_class_to_affinity_identity():
    prior = torch.tensor([0.84, 0.09, 0.02, 0.05])
    torch.testing.assert_close(class_to_affinity(torch.eye(4), prior), torch.eye(2))


def test_class_to_affinity_symmetric_t_is_prior_free():
    t = torch.full((4, 4), 0.5 / 3)
    t.fill_diagonal_(0.5)
    a = class_to_affinity(t, torch.tensor([0.84, 0.09, 0.02, 0.05]))
    b = class_to_affinity(t, torch.tensor([0.25, 0.25, 0.25, 0.25]))
    torch.testing.assert_close(a, b)
    # The known value for symmetric 50 %, in our order (0 = dissimilar, 1 = similar).
    torch.testing.assert_close(a, torch.tensor([[7 / 9, 2 / 9], [2 / 3, 1 / 3]]))
    torch.testing.assert_close(a.sum(1), torch.ones(2))


def test_class_to_affinity_matches_monte_carlo():
    rng = np.random.default_rng(0)
    prior = np.array([0.6, 0.2, 0.12, 0.08])
    t = rng.dirichlet(np.ones(4), size=4) * 0.5 + np.eye(4) * 0.5
    n = 2_000_000
    clean = rng.choice(4, size=(n, 2), p=prior)
    cum = np.cumsum(t, 1)
    noisy = (rng.random((n, 2, 1)) > cum[clean]).sum(2)
    cs, ns = clean[:, 0] == clean[:, 1], noisy[:, 0] == noisy[:, 1]
    mc = np.array([[np.mean(~ns[~cs]), np.mean(ns[~cs])], [np.mean(~ns[cs]), np.mean(ns[cs])]])
    got = class_to_affinity(torch.tensor(t), torch.tensor(prior)).numpy()
    np.testing.assert_allclose(got, mc, atol=0.01)
    # The official order is the same matrix with both states swapped.
    code = class_to_affinity(torch.tensor(t), torch.tensor(prior), code_order=True).numpy()
    np.testing.assert_allclose(code, got[::-1, ::-1])


def test_class_prior_ignores_ignore_index():
    m = np.array([[0, 0, 1, 255], [2, 3, 255, 255]], np.uint8)
    np.testing.assert_allclose(class_prior([m], 4), [0.4, 0.2, 0.2, 0.2], atol=1e-8)


# ------------------------------------------------------------------ DAR


def test_refine_equals_dense_reference():
    z = torch.randn(2, 4, 9, 11, dtype=torch.float64)
    f = torch.randn(2, 16, 9, 11, dtype=torch.float64)
    s = affinity(f)
    assert s.shape == (2, 99, 99) and s.min() >= 1e-10 and s.max() <= 1
    torch.testing.assert_close(refine(z, s), dense_refine(z, s), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        refine_chunked(z, f, chunk=17), dense_refine(z, s), atol=1e-5, rtol=0
    )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("hw", [(3, 5), (16, 20), (64, 64)])
def test_refine_with_all_ones_affinity(dtype, hw):
    """The spec's check, in float32 too: the shortcut (sum z - S z) / (N - rowsum S) lost
    all precision here (max errors 0.30, 2.98, 22.9 at N = 15, 320, 4096)."""
    z = torch.randn(1, 3, *hw, dtype=dtype, generator=torch.Generator().manual_seed(3))
    n = hw[0] * hw[1]
    s = torch.ones(1, n, n, dtype=dtype)
    expected = z + 0.5 * z.mean(dim=(2, 3), keepdim=True)
    tol = 1e-6 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(refine(z, s), expected, atol=tol, rtol=0)


def test_chunked_path_for_large_grids():
    z = torch.randn(1, 4, 66, 66)
    f = torch.randn(1, 8, 66, 66)
    out = dar(z, f)  # 66x66 > 64x64 takes the chunked path
    ref = refine(z, affinity(f))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_pixel_affinity_is_a_row_of_s():
    f = torch.randn(2, 8, 6, 7)
    s = affinity(f)
    torch.testing.assert_close(pixel_affinity(f, 2, 3), s[:, 2 * 7 + 3].reshape(2, 6, 7))


# ------------------------------------------------------------------ losses


@pytest.mark.parametrize("with_t", [True, False])
def test_affinity_loss_equals_naive(with_t):
    # Generic features: with few positive channels after ReLU, two pixels can get S = 1
    # exactly, where the two forms differ on purpose (see the degenerate-pair test).
    f = (torch.randn(2, 16, 10, 12, dtype=torch.float64) + 0.5).requires_grad_()
    y = torch.randint(0, 4, (2, 40, 48))
    y[0, :8] = 255
    labels, valid = grid_labels(y, (10, 12))
    assert (~valid).any()
    t_a = TransitionMatrix(2).double()() if with_t else torch.eye(2, dtype=torch.float64)
    ours = affinity_loss(f, labels, valid, t_a if with_t else None, chunk=7)
    (g_ours,) = torch.autograd.grad(ours, f)
    ref = naive_affinity_loss(f, labels, valid, t_a)
    (g_ref,) = torch.autograd.grad(ref, f)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(g_ours, g_ref, atol=1e-5, rtol=1e-4)


def test_corrected_ce_with_identity_equals_plain_ce():
    logits = torch.randn(2, 4, 8, 9, dtype=torch.float64)
    y = torch.randint(0, 4, (2, 8, 9))
    y[0, 0] = 255
    plain = F.cross_entropy(logits, y, ignore_index=255)
    torch.testing.assert_close(corrected_ce(logits, y, torch.eye(4, dtype=torch.float64)), plain)
    torch.testing.assert_close(corrected_ce(logits, y, None), plain)


def test_corrected_ce_all_ignored_is_zero():
    logits = torch.randn(1, 4, 3, 3, requires_grad=True)
    y = torch.full((1, 3, 3), 255)
    loss = corrected_ce(logits, y, TransitionMatrix(4)())
    loss.backward()
    assert loss.item() == 0 and torch.isfinite(logits.grad).all()


def test_gradients_finite_with_absent_classes():
    from jcas_napari.core.config import load_config
    from jcas_napari.core.model import JCASOutput

    cfg = load_config("small")
    logits = [torch.randn(2, 4, 8, 10, requires_grad=True) for _ in range(2)]
    feats = [torch.randn(2, d, 8, 10, requires_grad=True) for d in (8, 16)]
    y = torch.zeros(2, 64, 80, dtype=torch.long)  # background only: classes 1-3 absent
    y[1, :10] = 255
    tc, ta = TransitionMatrix(4), TransitionMatrix(2)
    prior = torch.tensor([1.0, 1e-9, 1e-9, 1e-9])
    out = JCASOutput(tuple(logits), tuple(feats))
    total, terms = jcas_loss(out, y, cfg.loss, (8, 10), tc(), ta(), prior)
    total.backward()
    assert np.isfinite(total.item()) and set(terms) == {
        "seg1",
        "seg2",
        "aff1",
        "aff2",
        "vol",
        "consistency",
    }
    for t in (*logits, *feats, tc.weight, ta.weight):
        assert torch.isfinite(t.grad).all()
    assert tc.weight.grad.abs().sum() > 0 and ta.weight.grad.abs().sum() > 0


def test_stage1_has_no_transition_terms_and_matches_weights():
    from jcas_napari.core.config import LossWeights
    from jcas_napari.core.model import JCASOutput

    out = JCASOutput(
        (torch.randn(1, 4, 6, 8), torch.randn(1, 4, 6, 8)),
        (torch.randn(1, 8, 6, 8), torch.randn(1, 8, 6, 8)),
    )
    y = torch.randint(0, 4, (1, 48, 64))
    w = LossWeights()
    total, terms = jcas_loss(out, y, w, (6, 8))
    assert set(terms) == {"seg1", "seg2", "aff1", "aff2"}
    expected = terms["seg2"] + 0.1 * terms["seg1"] + terms["aff1"] + 0.1 * terms["aff2"]
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)
    assert all(not t.requires_grad and t.ndim == 0 for t in terms.values())
    # An affinity-free warm-up: only the class loss, trained and reported.
    quiet, terms_quiet = jcas_loss(out, y, LossWeights(warmup_affinity=False), (6, 8))
    assert set(terms_quiet) == {"seg1", "seg2"}
    class_only = terms["seg2"] + 0.1 * terms["seg1"]
    assert quiet.item() == pytest.approx(class_only.item(), rel=1e-5)
    assert terms["aff1"].item() > 0  # so the check above can tell the two apart


def test_warmup_affinity_does_not_change_stage_2():
    from jcas_napari.core.config import LossWeights
    from jcas_napari.core.model import JCASOutput

    torch.manual_seed(0)
    out = JCASOutput(
        (torch.randn(1, 4, 6, 8), torch.randn(1, 4, 6, 8)),
        (torch.randn(1, 8, 6, 8), torch.randn(1, 8, 6, 8)),
    )
    y = torch.randint(0, 4, (1, 48, 64))
    tc, ta = TransitionMatrix(4)(), TransitionMatrix(2)()
    prior = torch.full((4,), 0.25)
    on = jcas_loss(out, y, LossWeights(), (6, 8), tc, ta, prior)[0]
    off = jcas_loss(out, y, LossWeights(warmup_affinity=False), (6, 8), tc, ta, prior)[0]
    assert on.item() == pytest.approx(off.item(), rel=1e-6)


def test_affinity_loss_finite_gradient_when_dissimilar_pair_has_s_equal_1():
    """Two pixels with identical features but different labels: the naive BCE's gradient is
    about 1e12 there (and NaN once torch.where mixes in log(0)); ours stays finite."""
    f = torch.zeros(1, 4, 1, 2, requires_grad=True)
    with torch.no_grad():
        f[0, 0] = 1.0  # both pixels have the same embedding: S = 1
    labels, valid = torch.tensor([[0, 1]]), torch.tensor([[True, True]])
    loss = affinity_loss(f, labels, valid, None)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(f.grad).all()
    # Two self-pairs cost ~0; the two dissimilar pairs with S = 1 cost -log(1 - P_MAX) each,
    # P_MAX = 1 - 1e-7 as a float32.
    per_pair = -np.log1p(-np.float64(np.float32(1 - 1e-7)))
    assert loss.item() == pytest.approx(2 * per_pair / 4, rel=1e-4)
