"""Property-based checks of the noise models on random masks (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from jcas_napari.data.noise import KINDS as NOISE_KINDS
from jcas_napari.data.noise import corrupt

KINDS = [k for k in NOISE_KINDS if k != "none"]


@st.composite
def masks(draw):
    """Random part masks: a few rectangles of classes 1-3 and an optional ignore block."""
    h, w = draw(st.integers(16, 48)), draw(st.integers(16, 48))
    m = np.zeros((h, w), np.uint8)
    for _ in range(draw(st.integers(0, 4))):
        y0, x0 = draw(st.integers(0, h - 2)), draw(st.integers(0, w - 2))
        y1, x1 = draw(st.integers(y0 + 1, h)), draw(st.integers(x0 + 1, w))
        m[y0:y1, x0:x1] = draw(st.integers(1, 3))
    if draw(st.booleans()):
        m[: draw(st.integers(1, h // 2)), :3] = 255
    return m


@settings(max_examples=60, deadline=None)
@given(mask=masks(), kind=st.sampled_from(KINDS), seed=st.integers(0, 2**16))
def test_any_mask_any_kind_is_valid_and_reproducible(mask, kind, seed):
    noisy, info = corrupt(mask, kind, np.random.default_rng(seed))
    again, _ = corrupt(mask, kind, np.random.default_rng(seed))
    np.testing.assert_array_equal(noisy, again)
    assert noisy.shape == mask.shape and noisy.dtype == np.uint8
    np.testing.assert_array_equal(noisy[mask == 255], 255)
    assert np.isin(noisy[mask != 255], [0, 1, 2, 3]).all()
    np.testing.assert_array_equal(info.changed, (noisy != mask) & (mask != 255))
    assert 0.0 <= info.disagreement <= 1.0


@settings(max_examples=40, deadline=None)
@given(mask=masks(), seed=st.integers(0, 2**16), r=st.integers(1, 6))
def test_dilate_keeps_and_erode_never_adds_foreground(mask, seed, r):
    fg = (mask > 0) & (mask != 255)
    grown, _ = corrupt(mask, "dilate", np.random.default_rng(seed), radius=r)
    shrunk, _ = corrupt(mask, "erode", np.random.default_rng(seed), radius=r)
    assert (grown[fg] > 0).all()
    assert not ((shrunk > 0) & (shrunk != 255) & ~fg).any()
