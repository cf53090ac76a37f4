"""Properties of the label-noise models."""

from __future__ import annotations

import numpy as np
import pytest

from jcas_napari.data.noise import (
    ASYMMETRIC50,
    KINDS,
    PRESETS,
    corrupt,
    corrupt_sequence,
    markov_binary,
    symmetric_matrix,
)
from jcas_napari.data.synthetic import make_frame, make_sequence

ALL = [k for k in KINDS if k != "none"] + [p for p in PRESETS if p not in KINDS]


@pytest.fixture(scope="module")
def frame():
    _, mask = make_frame(np.random.default_rng(11), (96, 120), n_instruments=2)
    mask = mask.copy()
    mask[:4, :] = 255  # an ignore band
    return mask


@pytest.mark.parametrize("kind", ALL)
def test_same_seed_same_output(frame, kind):
    a, ia = corrupt(frame, kind, np.random.default_rng(5))
    b, ib = corrupt(frame, kind, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert ia.to_json() == ib.to_json()
    np.testing.assert_array_equal(ia.changed, a != frame)


@pytest.mark.parametrize("kind", ALL)
def test_ignore_passes_through_and_values_valid(frame, kind):
    noisy, info = corrupt(frame, kind, np.random.default_rng(1))
    assert noisy.dtype == np.uint8 and noisy.shape == frame.shape
    np.testing.assert_array_equal(noisy[frame == 255], 255)
    assert set(np.unique(noisy[frame != 255])) <= {0, 1, 2, 3}
    assert info.disagreement == pytest.approx(info.changed.sum() / (frame != 255).sum())


@pytest.mark.parametrize(
    "kind, params",
    [
        ("symmetric", {"rate": 0.0}),
        ("asymmetric", {"rate": 0.0}),
        ("dilate", {"radius": 0}),
        ("erode", {"radius": 0}),
        ("affine", {"degrees": 0, "translate": (0, 0), "scale": (1, 1)}),
        ("markov", {"steps": 0, "theta3": 0.0}),
        ("drop", {"count": 0}),
        ("mix", {"probs": {"dilate": 1.0}, "radius": 0}),
        ("none", {}),
    ],
)
def test_zero_strength_is_identity(frame, kind, params):
    noisy, info = corrupt(frame, kind, np.random.default_rng(3), **params)
    np.testing.assert_array_equal(noisy, frame)
    assert info.disagreement == 0 and not info.changed.any()


@pytest.mark.parametrize("seed", range(5))
def test_dilation_never_removes_foreground(frame, seed):
    noisy, _ = corrupt(frame, "dilate", np.random.default_rng(seed), radius=(2, 9))
    fg = (frame > 0) & (frame != 255)
    assert (noisy[fg] > 0).all()
    assert (noisy > 0).sum() > (frame > 0).sum()


def test_erosion_never_adds_foreground(frame):
    noisy, _ = corrupt(frame, "erode", np.random.default_rng(0), radius=(2, 4))
    assert ((noisy > 0) & (noisy != 255) <= (frame > 0) & (frame != 255)).all()
    assert ((noisy > 0) & (noisy != 255)).sum() < ((frame > 0) & (frame != 255)).sum()


def test_symmetric_flip_gives_expected_class_fractions():
    rng = np.random.default_rng(0)
    clean = rng.choice(4, size=(400, 500), p=[0.84, 0.089, 0.02, 0.051]).astype(np.uint8)
    noisy, info = corrupt(clean, "symmetric50", np.random.default_rng(1))
    prior = np.bincount(clean.ravel(), minlength=4) / clean.size
    expected = prior @ symmetric_matrix(4, 0.5)
    got = np.bincount(noisy.ravel(), minlength=4) / noisy.size
    np.testing.assert_allclose(got, expected, atol=0.004)
    # JCAS's published symmetric50 fractions for the EndoVis prior.
    np.testing.assert_allclose(got, [0.451, 0.196, 0.174, 0.179], atol=0.01)
    assert info.disagreement == pytest.approx(0.5, abs=0.005)
    np.testing.assert_allclose(info.params["matrix"], symmetric_matrix(4, 0.5))


def test_asymmetric_preset_matches_jcas_fractions():
    rng = np.random.default_rng(0)
    clean = rng.choice(4, size=(400, 500), p=[0.84, 0.089, 0.02, 0.051]).astype(np.uint8)
    noisy, info = corrupt(clean, "asymmetric50", np.random.default_rng(2))
    got = np.bincount(noisy.ravel(), minlength=4) / noisy.size
    np.testing.assert_allclose(got, [0.452, 0.194, 0.170, 0.184], atol=0.01)
    np.testing.assert_allclose(info.params["matrix"], ASYMMETRIC50)
    # Empirical transition matrix recovers the one used.
    emp = np.array(
        [np.bincount(noisy[clean == i], minlength=4) / (clean == i).sum() for i in range(4)]
    )
    np.testing.assert_allclose(emp, ASYMMETRIC50, atol=0.02)


def test_markov_outward_only_never_removes_foreground(frame):
    binary = frame == 1
    out = markov_binary(binary, np.random.default_rng(0), 40, 1.0, 0.3, 0.0, blur=False)
    assert out[binary].all() and out.sum() > binary.sum()


def test_ellipse_keeps_part_sizes_roughly(frame):
    noisy, info = corrupt(frame, "ellipse", np.random.default_rng(0), scale=(1.0, 1.0))
    for c in (1, 2, 3):
        if (frame == c).sum() > 50:
            assert info.dice[c] > 0.5
    assert 0 < info.disagreement < 0.25


def test_drop_removes_a_whole_component(frame):
    noisy, info = corrupt(frame, "drop", np.random.default_rng(0), count=1)
    changed = info.changed
    assert changed.any()
    assert (noisy[changed] == 0).all()  # missed annotation -> background
    assert len(np.unique(frame[changed])) == 1


def test_swap_gives_a_whole_component_another_part_class(frame):
    noisy, info = corrupt(frame, "swap", np.random.default_rng(0), count=1)
    changed = info.changed
    assert changed.any()
    assert len(np.unique(frame[changed])) == 1 and len(np.unique(noisy[changed])) == 1
    given, became = int(frame[changed][0]), int(noisy[changed][0])
    assert given > 0 and became > 0 and given != became  # one part labelled as another
    assert (noisy[~changed] == frame[~changed]).all()


def test_mix_shares_draws_within_segments():
    _, masks = make_sequence(12, np.random.default_rng(3), (64, 80))
    out = list(corrupt_sequence(masks, "mix", np.random.default_rng(0)))
    segs = [info.params["segment"] for _, info in out]
    assert segs == sorted(segs) and segs[0] == 0
    lengths = np.bincount(segs)
    assert all(3 <= n <= 6 for n in lengths[:-1])  # the last segment may be cut short
    for a, b in zip(out, out[1:]):
        if a[1].params["segment"] == b[1].params["segment"]:
            assert a[1].params["choice"] == b[1].params["choice"]


def test_unknown_kind_is_a_clear_error(frame):
    with pytest.raises(ValueError, match="unknown noise kind or preset 'blur'"):
        corrupt(frame, "blur", np.random.default_rng(0))


def test_info_json_round_trip(frame):
    import json

    _, info = corrupt(frame, "mix", np.random.default_rng(0))
    data = json.loads(json.dumps(info.to_json()))
    assert data["kind"] == "mix" and set(data["dice"]) <= {"0", "1", "2", "3"}
