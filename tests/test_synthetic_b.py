"""Scene family B, appearance variation, and their hooks in make_dataset / make-dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from jcas_napari.cli import app
from jcas_napari.data import synthetic, synthetic_b
from jcas_napari.data.appearance import motion_blur, vary, vary_sequence
from jcas_napari.data.io import open_dataset
from jcas_napari.data.make import make_dataset

SMALL = (64, 80)


def _tissue_rgb(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Mean RGB (3,) of lit background pixels (excludes the black border)."""
    px = images[masks == 0].astype(float)
    return px[px.sum(1) > 60].mean(0)


def test_same_seed_same_frames_and_prefix_stable():
    a = synthetic_b.make_sequence(4, np.random.default_rng(4), SMALL)
    b = synthetic_b.make_sequence(4, np.random.default_rng(4), SMALL)
    c = synthetic_b.make_sequence(4, np.random.default_rng(5), SMALL)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    # Draws happen frame by frame, so a shorter video is the start of a longer one.
    short = synthetic_b.make_sequence(2, np.random.default_rng(4), SMALL)
    np.testing.assert_array_equal(short[0], a[0][:2])


def test_shapes_dtypes_parts_and_class_fractions():
    counts = np.zeros(4)
    for seed in range(3):
        images, masks = synthetic_b.make_sequence(6, np.random.default_rng(seed), (128, 160))
        assert images.shape == (6, 128, 160, 3) and images.dtype == np.uint8
        assert masks.shape == (6, 128, 160) and masks.dtype == np.uint8
        assert set(np.unique(masks)) <= {0, 1, 2, 3}
        counts += np.bincount(masks.ravel(), minlength=4)
        # Most frames show every part.
        assert np.mean([len(np.unique(m)) == 4 for m in masks]) >= 0.5
    frac = counts / counts.sum()
    assert 0.7 < frac[0] < 0.95 and frac[1] > frac[2] and frac[1] > frac[3]
    assert (frac[1:] > 0.005).all()


def test_border_is_black_and_unlabelled():
    images, masks = synthetic_b.make_sequence(2, np.random.default_rng(2), (128, 160))
    for img, m in zip(images, masks):
        # Rounded corners and the black side bars of the rectangular view.
        for y, x in [(0, 0), (-1, -1), (64, 0), (64, -1), (0, 80)]:
            assert img[y, x].max() < 10 and m[y, x] == 0


def test_family_b_tissue_differs_in_colour_from_a():
    ia, ma = synthetic.make_sequence(3, np.random.default_rng(1), (96, 120))
    ib, mb = synthetic_b.make_sequence(3, np.random.default_rng(1), (96, 120))
    ra, rb = _tissue_rgb(ia, ma), _tissue_rgb(ib, mb)
    # A is red tissue (green far below red); B is pale yellow-pink fat.
    assert ra[1] / ra[0] < 0.55 and rb[1] / rb[0] > 0.65
    assert rb.mean() > ra.mean()


def test_video_moves_but_stays_coherent():
    _, masks = synthetic_b.make_sequence(10, np.random.default_rng(3), (96, 120))
    changed = [not np.array_equal(masks[t], masks[t + 1]) for t in range(9)]
    assert any(changed)
    tool = masks > 0
    iou = [(tool[t] & tool[t + 1]).sum() / max((tool[t] | tool[t + 1]).sum(), 1) for t in range(9)]
    assert np.mean(iou) > 0.4


def test_jerky_stays_in_bounds_and_pauses():
    j = synthetic_b.Jerky([0.0], [-1.0], [1.0], [2.0], [0.0], hold=0.5)
    rng = np.random.default_rng(0)
    vals = np.array([j.step(rng)[0] for _ in range(200)])
    assert vals.min() >= -1 and vals.max() <= 1
    assert (np.diff(vals) == 0).mean() > 0.1  # it holds still at times


def test_vary_keeps_mask_and_is_deterministic():
    image, mask = next(synthetic_b.iter_sequence(1, np.random.default_rng(0), SMALL))
    mask_before = mask.copy()
    a = vary(image, mask, np.random.default_rng(9), strength=1.0)
    b = vary(image, mask, np.random.default_rng(9), strength=1.0)
    c = vary(image, mask, np.random.default_rng(10), strength=1.0)
    np.testing.assert_array_equal(mask, mask_before)
    assert a.shape == image.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, image) and not np.array_equal(a, c)
    np.testing.assert_array_equal(vary(image, mask, np.random.default_rng(9), 0.0), image)


def test_vary_sequence_passes_masks_through():
    frames = list(synthetic.iter_sequence(3, np.random.default_rng(1), SMALL))
    out = list(vary_sequence(frames, np.random.default_rng(2), 1.5))
    assert len(out) == 3
    for (img, m), (vimg, vm) in zip(frames, out):
        assert vm is m and vimg.shape == img.shape and not np.array_equal(vimg, img)


def test_motion_blur_keeps_mean_and_shape():
    img = np.random.default_rng(0).random((20, 30, 3)).astype(np.float32)
    out = motion_blur(img, 3.0, 4.0)
    assert out.shape == img.shape and out.std() < img.std()
    assert abs(out.mean() - img.mean()) < 0.02
    assert motion_blur(img, 0.2, 0.2) is img


def _read_images(root, n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The first ``n`` images (H,W,3) and clean masks (H,W) of the dataset at ``root``."""
    ds = open_dataset(root)
    return [ds[i].image for i in range(n)], [ds[i].clean for i in range(n)]


def test_family_a_without_vary_is_unchanged(tmp_path):
    out = make_dataset(tmp_path / "a", sequences=1, frames=2, size=SMALL, seed=3)
    images, cleans = _read_images(out, 2)
    direct = list(synthetic.iter_sequence(2, np.random.default_rng([3, 0]), SMALL))
    for img, clean, (d_img, d_mask) in zip(images, cleans, direct):
        np.testing.assert_array_equal(img, d_img)
        np.testing.assert_array_equal(clean, d_mask)
    record = json.loads((out / "noise.json").read_text())
    assert record["family"] == "a" and record["vary"] == 0.0


def test_make_dataset_family_b_with_vary(tmp_path):
    out = make_dataset(
        tmp_path / "b",
        sequences=2,
        frames=2,
        size=SMALL,
        noise="ellipse",
        seed=1,
        family="b",
        vary=0.8,
    )
    ds = open_dataset(out)
    ds.validate()
    assert len(ds) == 4 and ds.has_clean
    record = json.loads((out / "noise.json").read_text())
    assert record["family"] == "b" and record["vary"] == 0.8 and len(record["frames"]) == 4
    direct = list(synthetic_b.iter_sequence(2, np.random.default_rng([1, 0]), SMALL))
    # Variation changes the picture, never the true masks.
    np.testing.assert_array_equal(ds[0].clean, direct[0][1])
    assert not np.array_equal(ds[0].image, direct[0][0])


def test_make_dataset_rejects_bad_family_and_vary(tmp_path):
    with pytest.raises(ValueError, match="family"):
        make_dataset(tmp_path / "x", sequences=1, frames=1, size=SMALL, family="c")
    with pytest.raises(ValueError, match="vary"):
        make_dataset(tmp_path / "y", sequences=1, frames=1, size=SMALL, vary=-1.0)
    with pytest.raises(ValueError, match="style must be"):
        make_dataset(tmp_path / "z", sequences=1, frames=1, size=SMALL, style=-0.5)
    for bad in (float("inf"), float("nan")):  # noise.json must stay valid JSON
        with pytest.raises(ValueError, match="finite"):
            make_dataset(tmp_path / "v", sequences=1, frames=1, size=SMALL, style=bad)
        with pytest.raises(ValueError, match="finite"):
            make_dataset(tmp_path / "v", sequences=1, frames=1, size=SMALL, vary=bad)
    assert not (tmp_path / "v").exists()
    with pytest.raises(ValueError, match="family a only"):
        make_dataset(tmp_path / "w", sequences=1, frames=1, size=SMALL, family="b", style=1.0)


def test_cli_family_and_vary_options(tmp_path):
    out = tmp_path / "gen"
    args = ["make-dataset", str(out), "-s", "1", "-f", "2", "--size", "64x80"]
    res = CliRunner().invoke(app, [*args, "--family", "b", "--vary", "0.5"])
    assert res.exit_code == 0, res.output
    record = json.loads((out / "noise.json").read_text())
    assert record["family"] == "b" and record["vary"] == 0.5
    res = CliRunner().invoke(app, ["make-dataset", str(tmp_path / "z"), "--family", "q"])
    assert res.exit_code == 2 and "family" in res.output
    res = CliRunner().invoke(app, ["make-dataset", str(tmp_path / "s"), *args[2:], "--style", "1"])
    assert res.exit_code == 0 and json.loads((tmp_path / "s" / "noise.json").read_text())["style"]
    res = CliRunner().invoke(
        app, ["make-dataset", str(tmp_path / "t"), "--family", "b", "--style", "1"]
    )
    assert res.exit_code == 2 and "family a only" in res.output


def test_vary_leaves_the_black_frame_black():
    image, mask = synthetic.make_frame(np.random.default_rng(0), (96, 120))
    for k in range(4):
        out = vary(image, mask, np.random.default_rng(k), strength=2.0)
        assert out[0, 0].max() == 0 and out[-1, -1].max() == 0


def test_family_a_with_style_draws_one_per_sequence(tmp_path):
    from jcas_napari.data.tool_style import draw_style

    out = make_dataset(tmp_path / "a", sequences=2, frames=1, size=SMALL, seed=3, style=1.0)
    _, cleans = _read_images(out, 2)
    restyled = 0
    for s, clean in enumerate(cleans):
        style = draw_style(np.random.default_rng([3, s, 3]), 1.0)
        direct = synthetic.iter_sequence(1, np.random.default_rng([3, s]), SMALL, style=style)
        np.testing.assert_array_equal(clean, next(direct)[1])
        plain = synthetic.iter_sequence(1, np.random.default_rng([3, s]), SMALL)
        restyled += not np.array_equal(clean, next(plain)[1])
    assert restyled >= 1  # the zoom changed at least one sequence's geometry
