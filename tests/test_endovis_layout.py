"""Real layouts in and out: the EndoVis 2018 release read in place, and cleaned masks that
come back in the user's own format (colours, palette PNG, 16-bit, .tif, TIFF stack)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml
from PIL import Image
from test_train import tiny_config, tree_hash
from typer.testing import CliRunner

from jcas_napari.cli import app
from jcas_napari.data.io import open_dataset, read_mask, write_image, write_stack
from jcas_napari.data.mask_format import encode_mask, format_of
from jcas_napari.data.schema import ClassInfo, DatasetError
from jcas_napari.data.synthetic import make_sequence
from jcas_napari.data.viz import palette
from jcas_napari.evaluate import evaluate_folders

runner = CliRunner()

# The 12 scene classes of the challenge's labels.json (colours as commonly distributed).
SCENE = [
    ("background-tissue", [0, 0, 0]),
    ("instrument-shaft", [0, 255, 0]),
    ("instrument-clasper", [0, 255, 255]),
    ("instrument-wrist", [125, 255, 12]),
    ("kidney-parenchyma", [255, 55, 0]),
    ("covered-kidney", [24, 55, 125]),
    ("thread", [187, 155, 25]),
    ("clamps", [0, 255, 125]),
    ("suturing-needle", [255, 255, 125]),
    ("suction-instrument", [123, 15, 175]),
    ("intestine", [124, 155, 5]),
    ("ultrasound-probe", [12, 255, 141]),
]
PALETTE = np.array([c for _, c in SCENE], np.uint8)


def run_tiny(dataset: Path, out: Path, cfg: Path):
    """``jcas run`` with the tiny test config from random init, on the CPU."""
    args = ["run", str(dataset), "--out", str(out), "--config", str(cfg), "--init", "none"]
    return runner.invoke(app, [*args, "--device", "cpu"])


def write_release(root: Path, masks_of, seed=3, seqs=("seq_1", "seq_2"), frames=4):
    """An EndoVis-2018 release: labels.json, seq_N/left_frames, seq_N/labels (RGB colours),
    right_frames and camera_calibration.txt (not read), and seq_9 without labels."""
    root.mkdir(parents=True)
    labels = [{"name": n, "color": c, "classid": i} for i, (n, c) in enumerate(SCENE)]
    (root / "labels.json").write_text(json.dumps(labels))
    rng = np.random.default_rng(seed)
    for s in seqs:
        images, masks = make_sequence(frames, rng, (64, 80), n_instruments=2)
        (root / s / "labels").mkdir(parents=True)
        for t, (img, m) in enumerate(zip(images, masks_of(masks))):
            write_image(root / s / "left_frames" / f"frame{t:03d}.png", img)
            write_image(root / s / "right_frames" / f"frame{t:03d}.png", img)
            Image.fromarray(PALETTE[m]).save(root / s / "labels" / f"frame{t:03d}.png")
        (root / s / "camera_calibration.txt").write_text("f 1000\n")
    write_image(root / "seq_9" / "left_frames" / "frame000.png", images[0])
    return root


def _noisy(masks):
    """Swap the wrist and clasper of every other frame: a class-level label error."""
    out = masks.copy()
    for t in range(0, len(out), 2):
        out[t][masks[t] == 2], out[t][masks[t] == 3] = 3, 2
    return out


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    base = tmp_path_factory.mktemp("endovis")
    noisy = write_release(base / "noisy", _noisy)
    truth = write_release(base / "truth", lambda m: m)
    return base, noisy, truth


def test_endovis_release_is_read_in_place(release):
    _, noisy, _ = release
    ds = open_dataset(noisy)
    assert ds.layout == "endovis" and len(ds) == 8
    assert ds.ids[:2] == ["seq_1/frame000", "seq_1/frame001"]
    assert list(ds.sequences()) == ["seq_1", "seq_2"]
    assert ds.classes.names[3] == "instrument-wrist" and ds.classes.num_classes == 12
    assert ds.classes.palette[1] == (0, 255, 0)
    assert any("seq_9" in line and "no labels/" in line for line in ds.skipped)
    s = ds[1]
    assert s.image.shape == (64, 80, 3) and s.mask.max() <= 3 and s.mask.dtype == np.uint8


def test_one_sequence_folder_and_per_sequence_labels_json(release, tmp_path):
    _, noisy, _ = release
    ds = open_dataset(noisy / "seq_2")  # labels.json sits in the parent
    assert ds.layout == "endovis" and ds.ids[0] == "seq_2/frame000" and len(ds) == 4
    (tmp_path / "rel").mkdir()
    for s in ("seq_1", "seq_2"):
        (tmp_path / "rel" / s).symlink_to(noisy / s)
    with pytest.raises(DatasetError, match="RGB mask but no class colours"):
        open_dataset(tmp_path / "rel")


def test_labels_json_problems_are_one_line(tmp_path):
    bad = tmp_path / "labels.json"
    bad.write_text(
        json.dumps(
            [
                {"name": "a", "color": [0, 0, 0], "classid": 0},
                {"name": "b", "color": [1, 1, 1], "classid": 2},
            ]
        )
    )
    from jcas_napari.data.endovis import load_labels_json

    with pytest.raises(DatasetError, match="without gaps"):
        load_labels_json(bad)
    bad.write_text('{"names": 1}')
    with pytest.raises(DatasetError, match="expected a list"):
        load_labels_json(bad)


def test_check_run_evaluate_on_an_endovis_release(release, tmp_path):
    base, noisy, truth = release
    before = tree_hash(noisy)
    res = runner.invoke(app, ["check", str(noisy)])
    assert res.exit_code == 0, res.output
    assert "8 frames in 2 sequence(s), layout endovis" in res.output
    assert "seq_9: skipped" in res.output and "labels.json" in res.output
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(1, 1).to_dict()))
    out = tmp_path / "out"
    res = run_tiny(noisy, out, cfg)
    assert res.exit_code == 0, res.output
    assert tree_hash(noisy) == before  # nothing written into the input
    written = sorted(p.relative_to(out).as_posix() for p in out.glob("seq_*/labels/*.png"))
    assert written == sorted(
        f"{s}/labels/frame{t:03d}.png" for s in ("seq_1", "seq_2") for t in range(4)
    )
    assert (out / "labels.json").read_bytes() == (noisy / "labels.json").read_bytes()
    for p in out.glob("seq_*/labels/*.png"):
        with Image.open(p) as im:
            assert im.mode == "RGB"  # colour in, colour out
            colours = {tuple(c) for c in np.asarray(im).reshape(-1, 3)}
        assert colours <= {tuple(c) for c in PALETTE.tolist()}
    report = (out / "report.md").read_text()
    assert "instrument-shaft rgb(0, 255, 0)" in report  # the user's palette in the legend
    res = runner.invoke(app, ["evaluate", str(out), str(truth)])
    assert res.exit_code == 0, res.output
    scores = json.loads(res.output)
    assert scores["classes"][1] == "instrument-shaft" and scores["frames"] == 8
    assert scores["class_map"].endswith("labels.json")
    given = evaluate_folders(noisy, truth)["dataset"]["mean_dice"]
    assert 0 < given < 1  # the swapped frames are wrong, the rest right


@pytest.mark.parametrize(
    "mode",
    ["ids8", "ids16", "indexed", "rgb", "tif8", "tif16", "rgba"],
)
def test_mask_formats_round_trip(tmp_path, mode):
    classes = ClassInfo(
        ("bg", "a", "b", "c"), palette=((0, 0, 0), (9, 9, 9), (5, 6, 7), (200, 1, 3))
    )
    ids = np.random.default_rng(0).integers(0, 4, (16, 20)).astype(np.uint8)
    suffix = ".tif" if mode.startswith("tif") else ".png"
    src = tmp_path / f"in{suffix}"
    if mode in ("ids8", "tif8"):
        data = ids
    elif mode in ("ids16", "tif16"):
        data = ids.astype(np.uint16)
    elif mode == "rgb":
        data = np.asarray(classes.palette, np.uint8)[ids]
    elif mode == "rgba":
        data = np.concatenate(
            [np.asarray(classes.palette, np.uint8)[ids], np.full((16, 20, 1), 255, np.uint8)], -1
        )
    if mode == "indexed":
        im = Image.fromarray(ids, mode="L").convert("P")
        im.putpalette([v for c in palette(4) for v in c])
        im.save(src)
    elif suffix == ".tif":
        tifffile.imwrite(src, data)
    else:
        Image.fromarray(data).save(src)
    fmt = format_of(src)
    dst = tmp_path / f"out{suffix}"
    dst.write_bytes(encode_mask(ids, fmt, classes))
    assert (read_mask(dst, classes) == ids).all()
    if suffix == ".png":
        with Image.open(src) as a, Image.open(dst) as b:
            want = "RGB" if mode == "rgba" else a.mode
            assert b.mode == want
            if mode == "indexed":
                assert b.getpalette()[:12] == a.getpalette()[:12]
    else:
        assert tifffile.imread(dst).dtype == tifffile.imread(src).dtype
    assert bool(fmt.change) == (mode == "rgba")


def test_clean_keeps_stack_tif_and_16bit_formats(tmp_path):
    images, masks = make_sequence(4, np.random.default_rng(2), (64, 80), n_instruments=2)
    write_stack(tmp_path / "stack", images, masks)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(1, 1).to_dict()))
    out = tmp_path / "out"
    res = run_tiny(tmp_path / "stack", out, cfg)
    assert res.exit_code == 0, res.output
    stack = tifffile.imread(out / "masks.tif")
    assert stack.shape == masks.shape and stack.dtype == np.uint8
    res = runner.invoke(
        app,
        [
            "clean",
            str(tmp_path / "stack"),
            "--out",
            str(out),
            "--model",
            str(out / "run" / "checkpoints" / "best.pt"),
        ],
    )
    assert res.exit_code == 0, res.output  # a rerun resumes and rewrites masks.tif
    assert (tifffile.imread(out / "masks.tif") == stack).all()
    # Folder masks as 16-bit TIFF files: cleaned masks are 16-bit .tif too.
    root = tmp_path / "tif16"
    for t in range(4):
        write_image(root / "images" / "s" / f"f{t}.png", images[t])
        (root / "masks" / "s").mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(root / "masks" / "s" / f"f{t}.tif", masks[t].astype(np.uint16))
    res = run_tiny(root, tmp_path / "o16", cfg)
    assert res.exit_code == 0, res.output
    outs = sorted((tmp_path / "o16" / "masks" / "s").iterdir())
    assert [p.name for p in outs] == [f"f{t}.tif" for t in range(4)]
    assert all(tifffile.imread(p).dtype == np.uint16 for p in outs)


def test_default_palette_never_repeats_a_colour():
    for k in (4, 12, 40, 255):
        cols = {tuple(c) for c in palette(k).tolist()}
        assert len(cols) == k and (255, 255, 255) not in cols  # white marks ignore


def test_napari_reader_opens_an_endovis_release(release):
    from jcas_napari.napari.reader import get_reader

    _, noisy, _ = release
    reader = get_reader(str(noisy))
    assert reader is not None
    layers = reader(str(noisy))
    frames = next(d for d, _, kind in layers if kind == "image")
    masks = next(d for d, _, kind in layers if kind == "labels")
    assert frames.shape == (8, 64, 80, 3) and masks.shape == (8, 64, 80)


def test_clean_output_refuses_a_folder_holding_an_unrelated_release(release, tmp_path):
    """An EndoVis release's cleaned masks go to OUT/seq_N/labels/: an --out that already
    holds the user's own seq_N/labels/ (not written by jcas) is refused, not overwritten."""
    from jcas_napari.data.io import DatasetError, open_dataset
    from jcas_napari.output_state import check_clean_output

    ds = open_dataset(release[1])
    out = tmp_path / "out"
    (out / next(iter(ds.sequences())) / "labels").mkdir(parents=True)
    with pytest.raises(DatasetError, match="not the output of an earlier jcas clean"):
        check_clean_output(out, ds)
    (out / ".jcas.lock").touch()  # an earlier jcas clean's folder: a rerun may write
    assert check_clean_output(out, ds) == out.resolve()
