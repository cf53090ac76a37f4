"""Cleaning, its outputs, the train/clean/run/evaluate CLI, and metrics vs torchmetrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_train import tiny_config, tree_hash
from typer.testing import CliRunner

from jcas_napari.cli import app
from jcas_napari.core.clean import Cleaner, RuleSettings, clean
from jcas_napari.core.metrics import segmentation_scores
from jcas_napari.core.train import run_sync, train
from jcas_napari.data.io import open_dataset, read_mask, write_mask
from jcas_napari.data.make import make_dataset

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("cl")
    make_dataset(base / "ds", sequences=3, frames=4, size=(64, 80), noise="ellipse", seed=4)
    ds = open_dataset(base / "ds")
    res = run_sync(train(ds, tiny_config(1, 1), base / "run"))
    cfg_path = base / "tiny.yaml"
    import yaml

    cfg_path.write_text(yaml.safe_dump(tiny_config(1, 1).to_dict()))
    return ds, res.best, cfg_path


def test_clean_rule_and_scores(trained):
    ds, best, _ = trained
    cleaner = Cleaner(best, 4)
    results = list(clean(ds, cleaner))
    assert [r.index for r in results] == list(range(len(ds)))
    for r in results:
        s = ds[r.index]
        assert r.prediction.shape == s.mask.shape and r.confidence.dtype == np.float32
        changed = r.proposed != s.mask
        assert ((r.regions > 0) == changed).all()
        assert sum(reg.area for reg in r.region_info) == changed.sum()
        assert r.changed_fraction == pytest.approx(changed.mean())
        assert 0 <= r.noise_score <= 1
    strict = list(clean(ds, best, settings=RuleSettings(min_posterior=1.01)))
    assert all((r.proposed == ds[r.index].mask).all() for r in strict)


def test_affinity_map_of_a_pixel(trained):
    ds, best, _ = trained
    s = ds[0]
    # (27, 0) is exactly where grid cell (3, 0) of the 8x10 grid lands in a 64x80 frame.
    a = Cleaner(best).affinity_map(s.image, 27, 0)
    assert a.shape == s.mask.shape and 0 <= a.min() and a.max() <= 1.0 + 1e-6
    assert a[27, 0] == pytest.approx(1.0, abs=1e-5)  # a pixel is most like itself
    assert a.min() < 0.99


def test_cli_clean_writes_outputs_and_never_the_dataset(trained, tmp_path):
    ds, best, _ = trained
    before = tree_hash(ds.root)
    out = tmp_path / "out"
    res = runner.invoke(app, ["clean", str(ds.root), "--model", str(best), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert tree_hash(ds.root) == before
    for fid in ds.ids:
        assert read_mask(out / "masks" / f"{fid}.png").shape == (64, 80)
        assert (out / "changes" / f"{fid}.png").exists()
        assert (out / "confidence" / f"{fid}.png").exists()
    rows = (out / "scores.csv").read_text().splitlines()
    assert rows[0] == "rank,id,noise_score,changed_fraction,regions" and len(rows) == 13
    scores = [float(r.split(",")[2]) for r in rows[1:]]
    assert scores == sorted(scores, reverse=True)
    report = (out / "report.md").read_text()
    assert "report/transitions.png" in report and (out / "report" / "transitions.png").exists()
    assert report.count("noise score") == 1 + 4  # the intro line and the 4 worst frames
    assert len(list((out / "report").glob("seq_*.png"))) == 4
    # What the rule used: the frame's T_C and each distance band's, per model.
    used = json.loads((out / "report" / "rule_t.json").read_text())
    ((model, u),) = used.items()
    assert model == best.name and np.asarray(u["t_bands"]).shape == (5, 4, 4)
    section = report.split("## What the cleaning rule used")[1].split("##")[0]
    assert section.count("input px from a drawn border |") == 5 and "change cap" in section
    assert "| 0-2 input px from a drawn border |" in section and u["border_from_inner"]
    assert "Gaps in a drawn part up to about 8 model input px wide are kept" in section
    assert u["t_frames"] == [8, True]  # the 8 frames of the 2 sequences it trained on
    assert "T estimated on 8 frames that the model trained on." in section
    # A rerun finds every frame done, cleans nothing, and still reports what was used.
    res = runner.invoke(app, ["clean", str(ds.root), "--model", str(best), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "report.md").read_text() == report
    (out / "report" / "rule_t.json").write_text("{not json")  # damaged: reported without it
    res = runner.invoke(app, ["clean", str(ds.root), "--model", str(best), "--out", str(out)])
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    assert "What the cleaning rule used" not in (out / "report.md").read_text()


def test_cli_refuses_output_inside_dataset(trained):
    ds, best, _ = trained
    before = tree_hash(ds.root)
    res = runner.invoke(
        app, ["clean", str(ds.root), "--model", str(best), "--out", str(ds.root / "cleaned")]
    )
    assert res.exit_code == 2 and "inside the input dataset" in res.output
    assert tree_hash(ds.root) == before


def test_cli_bad_dataset_and_checkpoint_errors(trained, tmp_path):
    ds, best, cfg = trained
    bad = tmp_path / "bad"
    make_dataset(bad, sequences=1, frames=2, size=(64, 80), seed=1)
    m = np.zeros((64, 80), np.uint8)
    m[0, 0] = 9
    (bad / "masks" / "seq_01" / "frame001.png").unlink()
    write_mask(bad / "masks" / "seq_01" / "frame001.png", m)
    before = tree_hash(bad)
    res = runner.invoke(
        app, ["train", str(bad), "--out", str(tmp_path / "r"), "--config", str(cfg)]
    )
    assert res.exit_code == 2 and "frame001.png: unknown class id(s) 9" in res.output
    assert "Traceback" not in res.output and tree_hash(bad) == before
    (tmp_path / "junk.pt").write_bytes(b"junk")
    res = runner.invoke(
        app,
        ["clean", str(ds.root), "--model", str(tmp_path / "junk.pt"), "--out", str(tmp_path / "o")],
    )
    assert res.exit_code == 2 and "junk.pt: not a PyTorch checkpoint file" in res.output
    res = runner.invoke(app, ["train", str(tmp_path / "nothing"), "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "does not exist" in res.output


def test_cli_run_with_two_folds(trained, tmp_path):
    ds, _, cfg = trained
    out = tmp_path / "run"
    res = runner.invoke(
        app, ["run", str(ds.root), "--out", str(out), "--config", str(cfg), "--folds", "2"]
    )
    assert res.exit_code == 0, res.output
    assert (out / "run" / "fold0" / "checkpoints" / "best.pt").exists()
    assert (out / "run" / "fold1" / "checkpoints" / "best.pt").exists()
    assert len(list((out / "masks").rglob("*.png"))) == len(ds)


def test_evaluate_json_matches_torchmetrics(trained, tmp_path):
    tm = pytest.importorskip("torchmetrics.functional.segmentation")
    ds, _, _ = trained
    res = runner.invoke(app, ["evaluate", str(ds.root / "masks"), str(ds.root / "masks_clean")])
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    assert got["frames"] == 12 and got["classes"][1] == "shaft"
    preds = torch.stack([torch.from_numpy(s.mask.astype(np.int64)) for s in ds])
    gts = torch.stack([torch.from_numpy(s.clean.astype(np.int64)) for s in ds])
    # Dataset-level IoU = torchmetrics' mean_iou over the whole set as one sample.
    iou = tm.mean_iou(
        preds.reshape(1, -1),
        gts.reshape(1, -1),
        num_classes=4,
        include_background=True,
        per_class=True,
        input_format="index",
    )
    np.testing.assert_allclose(got["dataset"]["iou"], iou[0].numpy(), atol=1e-5)
    # Per-image Dice over present classes = torchmetrics' samplewise Dice, averaged where
    # the class is present in the ground truth.
    dice = tm.dice_score(
        preds, gts, num_classes=4, include_background=True, average="none", input_format="index"
    )
    present = torch.stack([torch.bincount(g.flatten(), minlength=4) > 0 for g in gts])
    ref = [(dice[:, c][present[:, c]]).mean().item() for c in range(4)]
    np.testing.assert_allclose(got["per_image"]["dice"], ref, atol=1e-5)
    assert got["per_image"]["mean_dice"] == pytest.approx(np.mean(ref[1:]), abs=1e-6)


def test_segmentation_scores_small_example():
    gt = np.array([[0, 1], [2, 2]], np.uint8)
    pred = np.array([[0, 1], [2, 1]], np.uint8)
    s = segmentation_scores([(pred, gt)], 3)
    assert s["dataset"]["iou"] == pytest.approx([1.0, 0.5, 0.5])
    assert s["dataset"]["dice"] == pytest.approx([1.0, 2 / 3, 2 / 3])
    assert s["per_image"]["mean_dice"] == pytest.approx(2 / 3)


def test_cli_affinity_map_export(trained, tmp_path):
    ds, best, _ = trained
    out = tmp_path / "aff.png"
    res = runner.invoke(
        app,
        [
            "affinity",
            str(ds.root),
            "--model",
            str(best),
            "--frame",
            ds.ids[0],
            "--y",
            "20",
            "--x",
            "30",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    from jcas_napari.data.io import read_image

    assert read_image(out).shape == (64, 160, 3)
    res = runner.invoke(
        app,
        [
            "affinity",
            str(ds.root),
            "--model",
            str(best),
            "--frame",
            ds.ids[0],
            "--y",
            "999",
            "--x",
            "0",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 2 and "outside the 64x80 frame" in res.output
