"""T per band of distance to the drawn borders (issue 10): where hand-drawn masks err."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from jcas_napari.core.propose import (
    band_transitions,
    boundary_bands,
    label_posterior,
    propose,
)
from jcas_napari.core.transitions import confident_joint_estimate, noise_rate


def halves(h: int = 64, w: int = 80) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[:, w // 2 :] = 1
    return m


def test_bands_count_input_pixels_from_the_nearest_border():
    m = halves()  # border between columns 39 and 40
    bands = boundary_bands(m)  # edges 2, 4, 8, 16 px
    assert [int(bands[10, c]) for c in (39, 37, 34, 30, 0)] == [0, 1, 2, 3, 4]
    assert int(bands[10, 40]) == 0 and int(bands[10, 79]) == 4
    # Two frame pixels per input pixel: every edge twice as far.
    wide = boundary_bands(m, scale=2.0)
    assert [int(wide[10, c]) for c in (37, 34, 30, 0)] == [0, 1, 2, 4]


def test_each_pixel_is_weighed_by_the_t_of_its_band():
    given = np.ones((64, 80), np.uint8)
    given[:, :8] = 0
    q = np.full((2, 64, 80), 0.5, np.float32)
    t = np.stack([np.array([[1 - e, e], [0.0, 1.0]]) for e in (0.05, 0.1, 0.2, 0.3, 0.4)])
    bands = boundary_bands(given)
    post = label_posterior(q, given, t, bands)
    for b in range(5):
        sel = bands == b
        one_t = label_posterior(q, given, t[b])
        assert sel.any() and np.allclose(post[:, sel], one_t[:, sel])


def scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Truth, a mask drawn 5 px too wide around the instrument (border noise), and a
    model's q [2,H,W] that is right but unsure within a pixel or two of the true border,
    and more or less sure from pixel to pixel, as a real model is."""
    truth = np.zeros((128, 160), np.uint8)
    truth[30:100, 40:120] = 1
    drawn = ndi.binary_dilation(truth == 1, np.ones((11, 11))).astype(np.uint8)
    fg = ndi.gaussian_filter((truth == 1).astype(np.float32), 1.0)
    fg = np.clip(fg + np.random.default_rng(0).normal(0, 0.05, fg.shape), 0, 1)
    q = np.stack([1 - fg, fg]) * 0.9 + 0.05
    return truth, drawn, q.astype(np.float32)


def run_rule(q, given, per_band: bool, cap: bool = True, inner: bool = True):
    flat_q, flat_l = q.reshape(2, -1).T, given.ravel().astype(np.intp)
    t_one = confident_joint_estimate(flat_q, flat_l)
    rate = noise_rate(t_one, np.bincount(flat_l, minlength=2) / flat_l.size)
    most = int(np.ceil(rate * given.size)) if cap else None
    if not per_band:
        return propose(q, given, t_one, max_changed=most).proposed
    bands = boundary_bands(given)
    t = band_transitions(flat_q, flat_l, bands.ravel(), t_one, inner)
    return propose(q, given, t, max_changed=most, bands=bands).proposed


def test_per_band_t_fixes_border_noise_that_one_t_leaves():
    """Without the cap, which is all or nothing per region: this scene's one-T noise rate
    (4.8% of the frame) is below its true one (7.8%), and the ring is one region."""
    truth, drawn, q = scene()
    ring = (drawn == 1) & (truth == 0)
    bands = boundary_bands(drawn)
    with_bands, one_t = run_rule(q, drawn, True, cap=False), run_rule(q, drawn, False, cap=False)
    overall = run_rule(q, drawn, True, cap=False, inner=False)
    # Measured: bands 0 and 1 of the ring fixed 100%, against 63% with one T; band 0
    # weighed by the overall T alone (the previous rule) fixes 63% of it.
    for b in (0, 1):
        sel = ring & (bands == b)
        assert (with_bands == truth)[sel].mean() >= 0.95
        assert (with_bands == truth)[sel].mean() >= (one_t == truth)[sel].mean() + 0.2
    rim = ring & (bands == 0)
    assert (with_bands == truth)[rim].mean() >= (overall == truth)[rim].mean() + 0.2
    assert (with_bands == truth)[ring].mean() > (one_t == truth)[ring].mean()
    assert (with_bands != drawn)[~ring].sum() == 0  # nothing right was changed
    # The known cost, kept visible: with the cap (975 px) the ring is one region of 1044
    # px and is skipped whole; band 0 weighed by the overall T left a 920 px region that fit.
    assert (run_rule(q, drawn, True) != drawn).sum() == 0
    assert (run_rule(q, drawn, True, inner=False) == truth)[ring].mean() >= 0.5


def test_border_band_takes_the_noisier_row_of_overall_and_band_1():
    """Band 0 is not estimated on its own pixels (the model's blur); each row is the
    noisier of the overall row and band 1's, and band 1 without evidence (identity rows,
    as under pixel flips, where almost every pixel is at a border) leaves the overall T."""
    rng = np.random.default_rng(0)
    n = 4000
    clean = rng.integers(0, 2, n)
    q = np.eye(2)[clean] * 0.9 + 0.05
    labels = clean.copy()
    bands = rng.integers(0, 5, n)
    # Band 1: 40% of class-1 pixels drawn as 0; elsewhere 10% of class-0 pixels drawn as 1.
    labels[(bands == 1) & (clean == 1) & (rng.random(n) < 0.4)] = 0
    labels[(bands != 1) & (clean == 0) & (rng.random(n) < 0.1)] = 1
    overall = confident_joint_estimate(q, labels)
    t = band_transitions(q, labels, bands, overall)
    np.testing.assert_allclose(t[0, 0], overall[0])  # class 0: the overall row is noisier
    np.testing.assert_allclose(t[0, 1], t[1, 1])  # class 1: band 1's row is noisier
    assert t[0, 1, 1] < 0.7 < overall[1, 1]
    np.testing.assert_allclose(band_transitions(q, labels, bands, overall, inner=False)[0], overall)
    np.testing.assert_allclose(band_transitions(q, labels, np.zeros(n, int), overall)[0], overall)


@pytest.mark.parametrize("shift", [0, 2])
def test_per_band_t_does_no_harm_on_clean_masks(shift):
    """The mask is the truth; the model is right, or 2 px off (confidently wrong along a
    border): per-band T still changes at most 0.5% of pixels."""
    truth, _, q = scene()
    q = np.roll(q, shift, axis=2)
    changed = (run_rule(q, truth, True) != truth).mean()
    assert changed <= 0.005
