"""Frames decode to the colours a user sees, by one function for files and napari layers."""

from __future__ import annotations

import numpy as np
from PIL import Image

from jcas_napari.data.decode import read_image, to_uint8_image
from jcas_napari.napari.layers import as_frames


def rgb(h=12, w=16):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_palette_frames_give_their_colours(tmp_path):
    img = Image.fromarray(rgb()).quantize(colors=16)
    img.save(tmp_path / "p.png")
    assert img.mode == "P"
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), np.asarray(img.convert("RGB")))


def test_cmyk_jpeg_is_not_inverted(tmp_path):
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 220
    Image.fromarray(red).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    out = read_image(tmp_path / "c.jpg").astype(int)
    assert out[..., 0].mean() > 180 and out[..., 1].mean() < 40 and out[..., 2].mean() < 40


def test_grey_with_alpha_is_read_as_grey(tmp_path):
    la = np.stack([np.full((8, 8), 90, np.uint8), np.full((8, 8), 255, np.uint8)], -1)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    out = read_image(tmp_path / "la.png")
    assert out.shape == (8, 8, 3) and (out == 90).all()


def test_exif_rotation_is_applied(tmp_path):
    img = Image.fromarray(rgb(10, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / "r.jpg", exif=exif, quality=95)
    assert read_image(tmp_path / "r.jpg").shape == (20, 10, 3)


def test_twelve_bit_data_in_16_bit_png_keeps_its_range(tmp_path):
    grey = np.linspace(0, 4095, 64, dtype=np.uint16).reshape(8, 8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.max() == 255 and out.min() == 0  # not squashed to 0-15
    full = np.array([[0, 65535]], np.uint16)
    assert to_uint8_image(full).max() == 255


def test_layers_and_files_give_the_same_model_input(tmp_path):
    stack = np.linspace(0, 4000, 2 * 6 * 7 * 3).astype(np.uint16).reshape(2, 6, 7, 3)
    from_layer = as_frames(stack)
    from_files = np.stack([to_uint8_image(f, "f") for f in stack])
    np.testing.assert_array_equal(from_layer, from_files)
