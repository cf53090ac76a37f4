"""Generate the bad-input corpus: every way a dataset, a checkpoint or an output can be wrong.

Nothing binary is committed: ``build(root)`` writes each case into ``root/<name>/`` and
returns the cases with the message their error must contain.

Run: python tests/corpus/make_corpus.py OUT   (to look at the files)
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile
import torch
from PIL import Image

from jcas_napari.data.io import frame_path, write_image, write_mask, write_stack

H, W = 32, 40
ALL_EVAL = ("train", "clean", "check", "reader", "evaluate")
MODEL = Path(__file__).resolve().parents[2] / "models" / "jcas-small-synthetic.pt"


@dataclass
class Case:
    name: str
    path: Path  # the dataset (or the file standing in for one)
    expect: str  # a substring of the one-line error
    commands: tuple[str, ...] = ("train", "clean", "check", "reader")
    model: Path | None = None  # for checkpoint cases
    out: Path | None = None  # for output cases
    extra: dict = field(default_factory=dict)


def good(root: Path, frames: int = 2) -> Path:
    """A valid flat dataset of ``frames`` frames (H x W)."""
    rng = np.random.default_rng(0)
    for i in range(frames):
        write_image(frame_path(root, "images", f"f{i}"),
                    rng.integers(0, 255, (H, W, 3), dtype=np.uint8))  # fmt: skip
        m = np.zeros((H, W), np.uint8)
        m[8:20, 10:30] = 1 + i % 3
        write_mask(frame_path(root, "masks", f"f{i}"), m)
    return root


def _replace_mask(root: Path, name: str, write) -> None:
    for p in (root / "masks").glob(f"{name}.*"):
        p.unlink()
    write(root / "masks")


def build(root: Path) -> list[Case]:
    root = Path(root)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    cases: list[Case] = []

    def case(name: str, expect: str, commands=("train", "clean", "check", "reader"), **kw):
        cases.append(Case(name, root / name, expect, tuple(commands), **kw))
        return root / name

    # ---- structure
    (case("empty_folder", "empty dataset")).mkdir()
    (case("images_folder_empty", "no images found") / "images").mkdir(parents=True)
    d = good(case("image_without_mask", "image has no mask"))
    (d / "masks" / "f1.png").unlink()
    d = good(case("mask_without_image", "mask has no image"))
    (d / "images" / "f1.png").unlink()
    d = good(case("duplicate_frame_names", "two files for frame"))
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(d / "images" / "f0.jpg")
    d = good(case("masks_folder_missing", "masks folder is missing"))
    shutil.rmtree(d / "masks")
    d = good(case("clean_mask_missing", "no clean mask"))
    write_mask(d / "masks_clean" / "f0.png", np.zeros((H, W), np.uint8))
    f = case("path_is_a_file", "not a folder")
    f.write_text("not a dataset")
    case("path_missing", "does not exist")
    d = case("symlink_loop", "no images found")
    (d / "images").mkdir(parents=True)
    (d / "images" / "loop").symlink_to(d / "images", target_is_directory=True)

    # ---- shapes and channels
    d = good(case("shape_mismatch", "shape mismatch"))
    _replace_mask(d, "f1", lambda m: write_mask(m / "f1.png", np.zeros((H - 2, W), np.uint8)))
    d = good(case("mask_extra_channels", "got shape (32, 40, 2)"))
    _replace_mask(d, "f1", lambda m: tifffile.imwrite(m / "f1.tif", np.zeros((H, W, 2), np.uint8),
                                                      photometric="minisblack"))  # fmt: skip
    d = good(case("rgb_mask_without_palette", "RGB mask"))
    _replace_mask(d, "f1", lambda m: Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(
        m / "f1.png"))  # fmt: skip
    d = good(case("colour_not_in_palette", "is not in the palette"))
    pal = [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]
    (d / "classes.json").write_text(json.dumps({"names": ["bg", "shaft", "wrist", "clasper"],
                                                "palette": pal}))  # fmt: skip
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[0, 0] = (7, 7, 7)
    for i in range(2):
        _replace_mask(d, f"f{i}", lambda m, i=i: Image.fromarray(rgb).save(m / f"f{i}.png"))
    d = good(case("image_two_channels", "expected one image (H,W) or (H,W,3)"))
    (d / "images" / "f1.png").unlink()
    tifffile.imwrite(d / "images" / "f1.tif", np.zeros((H, W, 2), np.uint8),
                     photometric="minisblack")  # fmt: skip

    # ---- values
    d = good(case("class_id_out_of_range", "unknown class id(s) 9", commands=ALL_EVAL))
    bad = np.zeros((H, W), np.uint8)
    bad[1, 1] = 9
    _replace_mask(d, "f1", lambda m: write_mask(m / "f1.png", bad))
    d = good(case("mask16_large_values", "unknown class id(s) 1000", commands=ALL_EVAL))
    big = np.zeros((H, W), np.uint16)
    big[0, 0] = 1000
    _replace_mask(d, "f1", lambda m: tifffile.imwrite(m / "f1.tif", big))
    d = good(case("float_mask", "not an integer type", commands=ALL_EVAL))
    _replace_mask(d, "f1", lambda m: tifffile.imwrite(m / "f1.tif", np.zeros((H, W), np.float32)))
    d = good(case("nan_float_image", "unsupported image dtype float32"))
    (d / "images" / "f1.png").unlink()
    nan = np.full((H, W, 3), np.nan, np.float32)
    tifffile.imwrite(d / "images" / "f1.tif", nan, photometric="rgb")
    d = good(case("all_ignore_masks", "no labelled pixels", commands=("train",)))
    for i in range(2):
        _replace_mask(d, f"f{i}", lambda m, i=i: write_mask(m / f"f{i}.png",
                                                             np.full((H, W), 255, np.uint8)))

    # ---- broken files
    d = good(case("truncated_png", "unreadable or corrupt"))
    data = (d / "images" / "f1.png").read_bytes()
    (d / "images" / "f1.png").write_bytes(data[: len(data) // 2])
    d = good(case("truncated_tiff_image", "corrupt"))
    (d / "images" / "f1.png").unlink()
    buf = tifffile.imwrite(d / "images" / "f1.tif", np.zeros((H, W, 3), np.uint8))
    del buf
    tif = (d / "images" / "f1.tif").read_bytes()
    (d / "images" / "f1.tif").write_bytes(tif[: len(tif) // 3])
    d = good(case("zero_byte_image", "unreadable or corrupt"))
    (d / "images" / "f1.png").write_bytes(b"")
    d = good(case("zero_byte_mask", "unreadable or corrupt", commands=ALL_EVAL))
    (d / "masks" / "f1.png").write_bytes(b"")
    d = case("stack_frame_counts_differ", "shape mismatch")
    imgs = np.zeros((3, H, W, 3), np.uint8)
    write_stack(d, imgs, np.zeros((3, H, W), np.uint8))
    tifffile.imwrite(d / "masks.tif", np.zeros((2, H, W), np.uint8), photometric="minisblack")
    d = case("stack_corrupt", "corrupt TIFF")
    write_stack(d, imgs, np.zeros((3, H, W), np.uint8))
    (d / "masks.tif").write_bytes(b"II*\x00" + b"\x00" * 16)

    # ---- classes.json
    for name, content, expect in (
        ("classes_bad_json", "{names: [", "not valid JSON"),
        ("classes_duplicate_names", json.dumps({"names": ["a", "a", "b", "c"]}),
         "distinct class names"),
        ("classes_ignore_in_range", json.dumps({"names": ["a", "b", "c", "d"], "ignore_index": 2}),
         "ignore_index 2"),
        ("classes_palette_length",
         json.dumps({"names": ["a", "b", "c", "d"], "palette": [[0, 0, 0]]}), "palette needs one"),
    ):  # fmt: skip
        (good(case(name, expect)) / "classes.json").write_text(content)

    # ---- checkpoints (on a good dataset)
    ok = good(root / "_good")
    ckpt = torch.load(MODEL, weights_only=True)
    three = good(root / "_three_classes")
    (three / "classes.json").write_text(json.dumps({"names": ["bg", "shaft", "wrist"]}))
    cases.append(Case("ckpt_other_class_count", three, "checkpoint has 4 classes", ("clean",),
                      model=MODEL))  # fmt: skip
    data = MODEL.read_bytes()
    (root / "truncated.pt").write_bytes(data[: len(data) // 4])
    cases.append(Case("ckpt_truncated", ok, "unreadable or truncated", ("clean",),
                      model=root / "truncated.pt"))  # fmt: skip
    newer = dict(ckpt, format_version=99)
    torch.save(newer, root / "newer.pt")
    cases.append(Case("ckpt_newer_version", ok, "format version 99 is newer", ("clean",),
                      model=root / "newer.pt"))  # fmt: skip
    torch.save({"model": _Evil()}, root / "evil.pt")
    cases.append(Case("ckpt_malicious_pickle", ok, "refused", ("clean",),
                      model=root / "evil.pt"))  # fmt: skip
    cases.append(Case("ckpt_missing", ok, "not found", ("clean",), model=root / "nope.pt"))

    # ---- outputs
    cases.append(Case("output_inside_input", ok, "inside the input dataset", ("clean",),
                      model=MODEL, out=ok / "cleaned"))  # fmt: skip
    return cases


EVIL_MARK = Path("/tmp/jcas_corpus_evil_ran")


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, (f"touch {EVIL_MARK}",))


if __name__ == "__main__":
    for c in build(Path(sys.argv[1] if len(sys.argv) > 1 else "corpus_out")):
        print(f"{c.name}: {c.expect}")
