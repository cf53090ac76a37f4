"""A second ``jcas clean`` into the same folder: what it keeps, what it redoes, and the
user's files it must not overwrite (found by a new-user walkthrough)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from test_train import tiny_config
from typer.testing import CliRunner

from jcas_napari.cli import app
from jcas_napari.core.clean import RuleSettings
from jcas_napari.core.train import run_sync, train
from jcas_napari.data.io import open_dataset, read_mask, write_mask
from jcas_napari.data.make import make_dataset
from jcas_napari.output_state import inputs_key

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("rerun")
    make_dataset(base / "ds", sequences=2, frames=3, size=(64, 80), noise="ellipse", seed=5)
    res = run_sync(train(open_dataset(base / "ds"), tiny_config(1, 1), base / "run"))
    return base / "ds", res.best


def clean_cli(ds, best, out, *extra):
    res = runner.invoke(app, ["clean", str(ds), "--model", str(best), "--out", str(out), *extra])
    assert res.exit_code == 0, res.output
    return res.output


def outputs(out, ds):
    return {fid: read_mask(out / "masks" / f"{fid}.png") for fid in open_dataset(ds).ids}


def test_the_identity_of_the_inputs_follows_masks_and_settings(trained, tmp_path):
    ds = tmp_path / "ds"
    shutil.copytree(trained[0], ds)
    key = inputs_key(open_dataset(ds), RuleSettings())
    assert inputs_key(open_dataset(ds), RuleSettings()) == key
    assert inputs_key(open_dataset(ds), RuleSettings(min_posterior=0.9)) != key
    mask = ds / "masks" / "seq_01" / "frame001.png"
    blank = np.zeros_like(read_mask(mask))
    mask.unlink()  # write_mask never replaces a mask; the annotator's editor does
    write_mask(mask, blank)
    assert inputs_key(open_dataset(ds), RuleSettings()) != key


def test_an_unchanged_rerun_keeps_every_frame(trained, tmp_path):
    ds, best = trained
    clean_cli(ds, best, tmp_path / "out")
    again = clean_cli(ds, best, tmp_path / "out")
    assert "6 frames already done by an earlier run were kept" in again
    assert "cleaned again" not in again
    rows = (tmp_path / "out" / "scores.csv").read_text().splitlines()[1:]
    changed = sum(float(r.split(",")[3]) > 0 for r in rows)
    assert f"wrote 6 cleaned masks ({changed} with proposed changes)" in again


def test_a_rerun_after_a_mask_changed_cleans_every_frame_again(trained, tmp_path):
    ds = tmp_path / "ds"
    shutil.copytree(trained[0], ds)
    best = trained[1]
    clean_cli(ds, best, tmp_path / "out")
    mask = ds / "masks" / "seq_01" / "frame001.png"
    edited = read_mask(mask).copy()
    edited[10:30, 10:40] = 1  # the annotator fixed something
    mask.unlink()
    write_mask(mask, edited)
    again = clean_cli(ds, best, tmp_path / "out")
    assert "6 frames cleaned by an earlier run into this folder were cleaned again" in again
    assert "already done" not in again
    fresh = clean_cli(ds, best, tmp_path / "fresh")
    assert "already done" not in fresh
    kept, new = outputs(tmp_path / "out", ds), outputs(tmp_path / "fresh", ds)
    assert all((kept[f] == new[f]).all() for f in new)
    # Where the model proposes nothing, the output is the edited mask, not the old one.
    regions = read_mask(tmp_path / "out" / "changes" / "seq_01" / "frame001.png")
    assert (kept["seq_01/frame001"][regions == 0] == edited[regions == 0]).all()


def test_a_rerun_with_another_threshold_cleans_again(trained, tmp_path):
    ds, best = trained
    clean_cli(ds, best, tmp_path / "out")
    again = clean_cli(ds, best, tmp_path / "out", "--threshold", "0.9")
    assert "cleaned again" in again
    clean_cli(ds, best, tmp_path / "fresh", "--threshold", "0.9")
    for name in ("scores.csv",):
        assert (tmp_path / "out" / name).read_text() == (tmp_path / "fresh" / name).read_text()


def test_clean_refuses_to_overwrite_files_it_did_not_write(trained, tmp_path):
    ds, best = trained
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("my own notes")
    (mine / "notes.txt").write_text("keep me")
    res = runner.invoke(app, ["clean", str(ds), "--model", str(best), "--out", str(mine)])
    assert res.exit_code != 0
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "report.md" in lines[0] and "not the output of" in lines[0]
    assert (mine / "report.md").read_text() == "my own notes"
    assert sorted(os.listdir(mine)) == ["notes.txt", "report.md"]  # nothing written
    # Unrelated files are no reason to refuse, and they are left alone.
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    clean_cli(ds, best, other)
    assert (other / "notes.txt").read_text() == "keep me"
    assert (other / "report.md").exists()


def test_run_refuses_such_a_folder_before_training(trained, tmp_path):
    ds, _ = trained
    mine = tmp_path / "mine"
    (mine / "masks").mkdir(parents=True)
    res = runner.invoke(
        app,
        ["run", str(ds), "--out", str(mine), "--epochs-warmup", "1", "--epochs-jcas", "1"],
    )
    assert res.exit_code != 0 and "masks" in res.output and "not the output of" in res.output
    assert sorted(os.listdir(mine)) == ["masks"]  # no run/ was trained


@pytest.mark.parametrize("kind", ["random", "png", "truncated", "code"])
def test_a_bad_checkpoint_is_one_line_and_leaves_nothing(trained, tmp_path, kind):
    """Found by a new-user walkthrough: random bytes were called 'refused code', the torch
    text was cut mid-word, and a pickle with code printed a torch warning and a progress
    bar before the error, and left OUT/.jcas.lock behind."""
    import torch
    from test_train import _Evil

    ds, best = trained
    bad = tmp_path / "bad.pt"
    if kind == "random":
        bad.write_bytes(np.random.default_rng(0).bytes(1000))
    elif kind == "png":
        bad.write_bytes(next((ds / "masks").rglob("*.png")).read_bytes())
    elif kind == "truncated":
        bad.write_bytes(best.read_bytes()[:5000])
    else:
        torch.save({"model": _Evil()}, bad, _use_new_zipfile_serialization=False)
    out = tmp_path / "out"
    res = runner.invoke(app, ["clean", str(ds), "--model", str(bad), "--out", str(out)])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: "), res.output
    expect = {
        "random": "not a PyTorch checkpoint file",
        "png": "not a PyTorch checkpoint file",
        "truncated": "unreadable or truncated checkpoint: the file is damaged",
        "code": "refused: it holds Python objects",
    }[kind]
    assert expect in lines[0] and not out.exists()
