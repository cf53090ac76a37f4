"""The procedural surgical scenes: reproducible, all parts present, video-like."""

from __future__ import annotations

import numpy as np

from jcas_napari.data.synthetic import endoscope_aperture, make_frame, make_sequence


def test_same_seed_same_frames():
    a = make_sequence(3, np.random.default_rng(4), (64, 80))
    b = make_sequence(3, np.random.default_rng(4), (64, 80))
    c = make_sequence(3, np.random.default_rng(5), (64, 80))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_shapes_dtypes_and_all_parts_present():
    images, masks = make_sequence(20, np.random.default_rng(0), (256, 320), n_instruments=2)
    assert images.shape == (20, 256, 320, 3) and images.dtype == np.uint8
    assert masks.shape == (20, 256, 320) and masks.dtype == np.uint8
    frac = np.bincount(masks.ravel(), minlength=4) / masks.size
    assert set(np.unique(masks)) == {0, 1, 2, 3}
    # Background dominates, shaft is the largest part, as in EndoVis 2018 parts.
    assert 0.7 < frac[0] < 0.97 and frac[1] > frac[2] and frac[1] > frac[3]
    assert (frac[1:] > 0.002).all()


def test_tissue_is_reddish_and_tools_are_grey():
    images, masks = make_sequence(5, np.random.default_rng(1), (128, 160))
    inside = endoscope_aperture(128, 160) > 0.99
    tissue = images[(masks == 0) & inside].astype(float).mean(0)
    tool = images[masks > 0].astype(float)
    assert tissue[0] > 1.5 * tissue[1] and tissue[0] > 1.5 * tissue[2]
    r, g = tool[:, 0].mean(), tool[:, 1].mean()
    assert abs(r - g) < 0.25 * r  # metal is grey, not red


def test_border_is_black_and_unlabelled():
    image, mask = make_frame(np.random.default_rng(2), (128, 160))
    assert image[0, 0].max() < 10 and image[-1, -1].max() < 10
    assert mask[0, 0] == 0 and mask[-1, -1] == 0


def test_sequences_move_smoothly():
    _, masks = make_sequence(10, np.random.default_rng(3), (128, 160))

    def iou(a, b):
        return ((a > 0) & (b > 0)).sum() / max(((a > 0) | (b > 0)).sum(), 1)

    near = np.mean([iou(masks[t], masks[t + 1]) for t in range(9)])
    far = iou(masks[0], masks[9])
    assert near > 0.6 and near > far
    assert not np.array_equal(masks[0], masks[1])
