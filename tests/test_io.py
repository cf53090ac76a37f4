"""Dataset layouts, round-trips and every validation error of jcas_napari.data.io."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from conftest import write_folder_dataset
from PIL import Image

from jcas_napari.data.io import (
    ClassInfo,
    DatasetError,
    atomic_write_bytes,
    open_dataset,
    read_mask,
    write_mask,
    write_stack,
)


def test_folder_layout_round_trip(folder_dataset, small_sequence):
    images, masks = small_sequence
    ds = open_dataset(folder_dataset)
    assert ds.layout == "folders"
    assert len(ds) == 6 and ds.has_clean
    assert ds.sequences() == {"seq_a": [0, 1, 2], "seq_b": [3, 4, 5]}
    by_id = {s.id: s for s in ds}
    s = by_id["seq_b/f01"]
    np.testing.assert_array_equal(s.image, images[1])
    np.testing.assert_array_equal(s.mask, masks[1])
    np.testing.assert_array_equal(s.clean, masks[1])
    assert s.mask.dtype == np.uint8 and s.image.shape == (64, 80, 3)
    assert ds.classes.names == ("background", "shaft", "wrist", "clasper")


def test_flat_layout_round_trip(tmp_path, small_sequence):
    images, masks = small_sequence
    write_folder_dataset(tmp_path / "flat", images, masks, sequences=("",))
    ds = open_dataset(tmp_path / "flat")
    assert ds.layout == "flat" and len(ds) == 6 and not ds.has_clean
    assert ds.ids == [f"f{i:02d}" for i in range(6)]
    np.testing.assert_array_equal(ds[4].mask, masks[4])


def test_jpeg_and_tif_images_pair_with_png_masks(tmp_path, small_sequence):
    images, masks = small_sequence
    root = tmp_path / "mixed"
    (root / "images").mkdir(parents=True)
    Image.fromarray(images[0]).save(root / "images" / "a.jpg", quality=95)
    tifffile.imwrite(root / "images" / "b.tif", images[1], photometric="rgb")
    write_mask(root / "masks" / "a.png", masks[0])
    write_mask(root / "masks" / "b.png", masks[1])
    ds = open_dataset(root)
    assert ds.ids == ["a", "b"]
    np.testing.assert_array_equal(ds[1].image, images[1])
    assert np.abs(ds[0].image.astype(int) - images[0]).mean() < 6  # lossy JPEG


def test_tiff_stack_layout_round_trip(tmp_path, small_sequence):
    images, masks = small_sequence
    write_stack(tmp_path / "st", images, masks, clean=masks)
    ds = open_dataset(tmp_path / "st")
    assert ds.layout == "stack" and len(ds) == 6 and ds.has_clean
    np.testing.assert_array_equal(ds[3].image, images[3])
    np.testing.assert_array_equal(ds[5].mask, masks[5])


def test_palette_rgb_masks_and_classes_json(tmp_path, small_sequence):
    images, masks = small_sequence
    pal = [[0, 0, 0], [10, 200, 30], [200, 10, 30], [5, 5, 250]]
    root = tmp_path / "pal"
    write_folder_dataset(root, images[:2], masks[:2], sequences=("",))
    for i in range(2):
        rgb = np.array(pal, np.uint8)[masks[i]]
        (root / "masks" / f"f{i:02d}.png").unlink()
        Image.fromarray(rgb).save(root / "masks" / f"f{i:02d}.png")
    (root / "classes.json").write_text(
        json.dumps(
            {
                "names": ["background", "shaft", "wrist", "clasper"],
                "ignore_index": 255,
                "palette": pal,
            }
        )
    )
    ds = open_dataset(root)
    np.testing.assert_array_equal(ds[1].mask, masks[1])


def test_sixteen_bit_masks_accepted_when_values_fit(tmp_path, small_sequence):
    images, masks = small_sequence
    root = tmp_path / "m16"
    write_folder_dataset(root, images[:1], masks[:1], sequences=("",))
    tifffile.imwrite(root / "masks" / "f00.tif", masks[0].astype(np.uint16))
    (root / "masks" / "f00.png").unlink()
    ds = open_dataset(root)
    assert ds[0].mask.dtype == np.uint8
    np.testing.assert_array_equal(ds[0].mask, masks[0])


def test_ignore_index_passes_validation(tmp_path):
    m = np.zeros((8, 8), np.uint8)
    m[0] = 255
    m[1] = 3
    write_mask(tmp_path / "m.png", m)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), m)


# ------------------------------------------------------------------ validation errors


def _one_frame(tmp_path, small_sequence, name="bad"):
    images, masks = small_sequence
    root = tmp_path / name
    write_folder_dataset(root, images[:1], masks[:1], sequences=("",))
    return root


def _error(root, read=True) -> DatasetError:
    with pytest.raises(DatasetError) as info:
        ds = open_dataset(root)
        if read:
            ds.validate()
    msg = str(info.value)
    assert "\n" not in msg
    return info.value


def test_error_image_without_mask(tmp_path, small_sequence):
    root = _one_frame(tmp_path, small_sequence)
    (root / "masks" / "f00.png").unlink()
    err = _error(root)
    assert err.path.name == "f00.png" and "image has no mask" in str(err)


def test_error_mask_without_image(tmp_path, small_sequence):
    root = _one_frame(tmp_path, small_sequence)
    write_mask(root / "masks" / "extra.png", np.zeros((64, 80), np.uint8))
    err = _error(root)
    assert err.path.name == "extra.png" and "mask has no image" in str(err)


def test_error_shape_mismatch(tmp_path, small_sequence):
    root = _one_frame(tmp_path, small_sequence)
    (root / "masks" / "f00.png").unlink()
    write_mask(root / "masks" / "f00.png", np.zeros((60, 80), np.uint8))
    err = _error(root, read=False)
    assert err.path.name == "f00.png" and "shape mismatch" in str(err) and "(60, 80)" in str(err)


def test_error_unknown_class_id(tmp_path, small_sequence):
    root = _one_frame(tmp_path, small_sequence)
    m = np.zeros((64, 80), np.uint8)
    m[3, 3] = 7
    (root / "masks" / "f00.png").unlink()
    write_mask(root / "masks" / "f00.png", m)
    err = _error(root)
    assert "unknown class id(s) 7" in str(err) and err.path.name == "f00.png"


def test_error_rgb_mask_without_palette(tmp_path, small_sequence):
    root = _one_frame(tmp_path, small_sequence)
    (root / "masks" / "f00.png").unlink()
    Image.fromarray(np.zeros((64, 80, 3), np.uint8)).save(root / "masks" / "f00.png")
    err = _error(root, read=False)
    assert "RGB mask" in str(err) and "palette" in str(err)


def test_error_sixteen_bit_mask_values_too_large(tmp_path, small_sequence):
    root = _one_frame(tmp_path, small_sequence)
    (root / "masks" / "f00.png").unlink()
    m = np.zeros((64, 80), np.uint16)
    m[0, 0] = 1000
    tifffile.imwrite(root / "masks" / "f00.tif", m)
    err = _error(root)
    assert "unknown class id(s) 1000" in str(err)


def test_error_corrupt_png(tmp_path, small_sequence):
    root = _one_frame(tmp_path, small_sequence)
    (root / "images" / "f00.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    err = _error(root, read=False)
    assert err.path.name == "f00.png" and "unreadable or corrupt" in str(err)


def test_error_truncated_png_found_on_read(tmp_path, small_sequence):
    root = _one_frame(tmp_path, small_sequence)
    path = root / "images" / "f00.png"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    err = _error(root)
    assert err.path.name == "f00.png" and "unreadable or corrupt" in str(err)


def test_error_corrupt_tiff_stack(tmp_path, small_sequence):
    images, masks = small_sequence
    write_stack(tmp_path / "st", images, masks)
    (tmp_path / "st" / "masks.tif").write_bytes(b"II*\x00" + b"\x00" * 40)
    err = _error(tmp_path / "st", read=False)
    assert err.path.name == "masks.tif" and "corrupt" in str(err)


def test_error_stack_shape_mismatch(tmp_path, small_sequence):
    images, masks = small_sequence
    write_stack(tmp_path / "st", images, masks)
    tifffile.imwrite(tmp_path / "st" / "masks.tif", masks[:4], photometric="minisblack")
    assert "shape mismatch" in str(_error(tmp_path / "st", read=False))


def test_error_empty_folder_and_missing(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "empty dataset" in str(_error(tmp_path / "empty"))
    (tmp_path / "noimg" / "images").mkdir(parents=True)
    assert "no images found" in str(_error(tmp_path / "noimg"))
    assert "does not exist" in str(_error(tmp_path / "nope"))


def test_error_bad_classes_json(tmp_path, small_sequence):
    root = _one_frame(tmp_path, small_sequence)
    (root / "classes.json").write_text("{not json")
    assert "classes.json" in str(_error(root)) and "JSON" in str(_error(root))
    (root / "classes.json").write_text(json.dumps({"names": ["a", "b"], "ignore_index": 1}))
    assert "ignore_index" in str(_error(root))


def test_classes_json_changes_class_count(tmp_path, small_sequence):
    root = _one_frame(tmp_path, small_sequence)
    (root / "classes.json").write_text(json.dumps({"names": ["bg", "tool"]}))
    err = _error(root)  # the frame has class ids 2 and 3
    assert "expected 0..1" in str(err)


# ------------------------------------------------------------------ writers


def test_writer_refuses_to_overwrite_user_masks(folder_dataset):
    target = folder_dataset / "masks" / "seq_a" / "f00.png"
    before = target.read_bytes()
    with pytest.raises(DatasetError, match="refusing to overwrite a user's mask"):
        write_mask(target, np.zeros((64, 80), np.uint8))
    assert target.read_bytes() == before
    assert not list(target.parent.glob(".*tmp"))


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("jcas_napari.data.io.os.replace", boom)
    with pytest.raises(DatasetError, match="out.bin: cannot write \\(disk full\\)"):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_atomic_write_refuses_existing_without_overwrite(tmp_path):
    path = tmp_path / "x.bin"
    atomic_write_bytes(path, b"1")
    with pytest.raises(DatasetError, match="file exists"):
        atomic_write_bytes(path, b"2", overwrite=False)
    assert path.read_bytes() == b"1"


def test_classinfo_default_without_file(tmp_path):
    info = ClassInfo.load(tmp_path / "classes.json")
    assert info.num_classes == 4 and info.ignore_index == 255 and info.palette is None


def test_written_files_get_normal_permissions(tmp_path):
    """Not mkstemp's 0600: outputs get 0666 minus the process umask, like open() would."""
    import stat

    from jcas_napari.data import io as io_mod

    path = atomic_write_bytes(tmp_path / "perm.bin", b"x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~io_mod._UMASK


def test_negative_class_ids_are_rejected(tmp_path):
    m = np.zeros((4, 4), np.int16)
    m[0, 0] = -1
    tifffile.imwrite(tmp_path / "neg.tif", m)
    with pytest.raises(DatasetError, match=r"neg.tif: unknown class id\(s\) -1"):
        read_mask(tmp_path / "neg.tif")


def test_checkpoint_header_check_names_each_problem(tmp_path):
    from jcas_napari.data.fsutil import checkpoint_file_problem

    zipped, legacy, text = tmp_path / "a.pt", tmp_path / "b.pt", tmp_path / "c.pt"
    zipped.write_bytes(b"PK\x03\x04rest")
    legacy.write_bytes(b"\x80\x02rest")
    text.write_text("hello")
    assert checkpoint_file_problem(zipped) is None and checkpoint_file_problem(legacy) is None
    assert checkpoint_file_problem(text) == "not a PyTorch checkpoint file"
    assert checkpoint_file_problem(tmp_path / "none.pt") == "checkpoint file not found"
    assert checkpoint_file_problem(tmp_path) == "is a folder, not a checkpoint file"
