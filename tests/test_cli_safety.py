"""The CLI keeps every safety promise it makes: no output inside the input, no silent
overwrite of a trained run, no silently ignored flag, Ctrl-C says how to resume, and bad
configs and checkpoints are one line (the one-line cases themselves are in the corpus)."""

from __future__ import annotations

import shlex
from dataclasses import fields
from pathlib import Path

import pytest
import torch
import yaml
from test_train import tiny_config, tree_hash
from typer.testing import CliRunner

from jcas_napari.assets import shipped_model
from jcas_napari.cli import app
from jcas_napari.core.checkpoint import (
    CheckpointError,
    export_checkpoint,
    load_checkpoint,
    model_from_checkpoint,
)
from jcas_napari.core.config import Config, load_config
from jcas_napari.core.config_check import DEPTHS, RULES
from jcas_napari.data.fsutil import check_output_dir
from jcas_napari.data.io import DatasetError
from jcas_napari.data.make import make_dataset

runner = CliRunner()


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A 2x2-frame dataset and tiny configs (1 and 2 warm-up epochs, no JCAS stage)."""
    root = tmp_path_factory.mktemp("safety")
    make_dataset(root / "ds", sequences=2, frames=2, size=(64, 80), noise="ellipse", seed=1)
    (root / "tiny1.yaml").write_text(yaml.safe_dump(tiny_config(1, 0).to_dict()))
    (root / "tiny2.yaml").write_text(yaml.safe_dump(tiny_config(2, 0).to_dict()))
    return root


def train_args(base: Path, out: Path, *extra: str, config: str = "tiny1.yaml") -> list[str]:
    return [
        "train",
        str(base / "ds"),
        "--out",
        str(out),
        "--config",
        str(base / config),
        "--init",
        "none",
        "--device",
        "cpu",
        *extra,
    ]


def error_lines(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.startswith("error:")]


@pytest.fixture(scope="module")
def trained(base) -> Path:
    """A finished 1-epoch run folder."""
    res = runner.invoke(app, train_args(base, base / "trained"))
    assert res.exit_code == 0, res.output
    return base / "trained"


# ------------------------------------------------------------------ outputs vs the input


def test_check_output_dir_refuses_every_overlap(tmp_path):
    ds = tmp_path / "data" / "ds"
    ds.mkdir(parents=True)
    (tmp_path / "link").symlink_to(ds, target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    inside = (
        ds,
        ds / "out",
        tmp_path / "link" / "x",
        tmp_path / "elsewhere" / ".." / "data" / "ds" / "x",
    )
    cases = [(out, "is inside") for out in inside]
    for out, why in [*cases, (tmp_path / "data", "contains"), (tmp_path, "contains")]:
        with pytest.raises(DatasetError, match=f"output folder {why} the input dataset"):
            check_output_dir(out, ds)
    # The dataset given through a symlink: the overlap is still found.
    with pytest.raises(DatasetError, match="inside the input dataset"):
        check_output_dir(ds / "out", tmp_path / "link")
    for fine in (tmp_path / "data" / "ds2", tmp_path / "elsewhere", tmp_path / "data" / "o"):
        assert check_output_dir(fine, ds) == fine.resolve()


@pytest.mark.parametrize("how", ["direct", "symlink", "dotdot"])
def test_train_and_run_never_write_into_the_dataset(base, tmp_path, how):
    ds = base / "ds"
    link = tmp_path / "link"
    link.symlink_to(ds, target_is_directory=True)
    (tmp_path / "x").mkdir()
    out = {
        "direct": ds / "run",
        "symlink": link / "run",
        "dotdot": tmp_path / "x" / ".." / "link" / "run",
    }[how]
    before = tree_hash(ds)
    for args in (
        train_args(base, out),
        ["run", str(ds), "--out", str(out), "--init", "none", "--epochs-warmup", "1"],
        ["clean", str(ds), "--model", str(shipped_model()), "--out", str(out)],
    ):
        res = runner.invoke(app, args)
        assert res.exit_code == 2, res.output
        assert "inside the input dataset" in error_lines(res.output)[0]
    assert tree_hash(ds) == before


def test_export_refuses_to_replace_its_input(trained):
    last = trained / "checkpoints" / "last.pt"
    before = last.read_bytes()
    for out in (last, trained / "checkpoints" / ".." / "checkpoints" / "last.pt"):
        res = runner.invoke(app, ["export", str(last), str(out)])
        assert res.exit_code == 2 and "is the input checkpoint itself" in res.output
    assert last.read_bytes() == before


# ------------------------------------------------------------------ existing runs, --resume


def test_training_into_a_trained_run_needs_resume_or_overwrite(base, tmp_path):
    out = tmp_path / "run"
    assert runner.invoke(app, train_args(base, out)).exit_code == 0
    best, last = out / "checkpoints" / "best.pt", out / "checkpoints" / "last.pt"
    saved = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (best, last)}
    res = runner.invoke(app, train_args(base, out))
    assert res.exit_code == 2 and "already holds a trained run" in res.output
    assert "--resume" in res.output and "--overwrite" in res.output
    assert all(p.read_bytes() == b and p.stat().st_mtime_ns == t for p, (b, t) in saved.items())
    res = runner.invoke(app, train_args(base, out, "--overwrite"))
    assert res.exit_code == 0, res.output
    # Written anew (an inode number can be reused once the old file is gone: not a test).
    assert all(p.stat().st_mtime_ns > t for p, (_, t) in saved.items())


def test_resume_refuses_what_it_would_ignore(base, trained, tmp_path):
    ds = str(base / "ds")
    cases = [
        (["--out", str(tmp_path / "empty"), "--resume"], "nothing to resume"),
        (["--out", str(trained), "--resume", "--overwrite"], "choose one"),
        (
            ["--out", str(trained), "--resume", "--epochs-warmup", "3"],
            "--epochs-warmup 3 (saved: 1)",
        ),
        (["--out", str(trained), "--resume", "--seed", "7"], "--seed 7 (saved: 0)"),
        (
            ["--out", str(trained), "--resume", "--config", str(base / "tiny2.yaml")],
            "train.epochs_warmup 2 (saved: 1)",
        ),
    ]
    for args, expect in cases:
        res = runner.invoke(app, ["train", ds, *args])
        assert res.exit_code == 2, res.output
        lines = error_lines(res.output)
        assert len(lines) == 1 and expect in lines[0], res.output
        if "saved:" in expect:
            assert "config and seed saved in it" in lines[0]
    # The same flags as the saved run are fine: nothing left to train, the run is kept.
    before = (trained / "checkpoints" / "last.pt").read_bytes()
    res = runner.invoke(
        app,
        [
            "train",
            ds,
            "--out",
            str(trained),
            "--resume",
            "--config",
            str(base / "tiny1.yaml"),
            "--epochs-warmup",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "nothing left to train" in res.output  # not silence
    assert (trained / "checkpoints" / "last.pt").read_bytes() == before


def test_resume_from_an_exported_model_is_refused(base, trained, tmp_path):
    run = tmp_path / "run" / "checkpoints"
    run.mkdir(parents=True)
    export_checkpoint(trained / "checkpoints" / "last.pt", run / "last.pt")
    res = runner.invoke(
        app, ["train", str(base / "ds"), "--out", str(tmp_path / "run"), "--resume"]
    )
    assert res.exit_code == 2 and "has no training state" in error_lines(res.output)[0]


def interrupt_after(kind: str):
    """A run_sync that stops with Ctrl-C at the first event of ``kind``."""

    def run_sync(gen, on_event=None):
        for event in gen:
            if on_event is not None:
                on_event(event)
            if event.kind == kind:
                raise KeyboardInterrupt

    return run_sync


def test_ctrl_c_prints_the_command_that_resumes(base, tmp_path, monkeypatch):
    out = tmp_path / "run d"  # a space: the command must be quoted for the shell
    monkeypatch.setattr("jcas_napari.core.train.run_sync", interrupt_after("epoch"))
    res = runner.invoke(app, train_args(base, out, config="tiny2.yaml"))
    assert res.exit_code == 130, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("interrupted")]
    assert len(lines) == 1 and "Traceback" not in res.output
    command = shlex.split(lines[0].split("resume with: ")[1])
    assert command[:2] == ["jcas", "train"] and command[-1] == "--resume"
    assert load_checkpoint(out / "checkpoints" / "last.pt")["epoch"] == 0
    monkeypatch.undo()
    res = runner.invoke(app, command[1:])
    assert res.exit_code == 0, res.output
    history = load_checkpoint(out / "checkpoints" / "last.pt")["history"]
    assert [h["epoch"] for h in history] == [0, 1]  # continued, not restarted


def test_ctrl_c_before_the_first_checkpoint(base, tmp_path, monkeypatch):
    monkeypatch.setattr("jcas_napari.core.train.run_sync", interrupt_after("step"))
    res = runner.invoke(app, train_args(base, tmp_path / "run"))
    assert res.exit_code == 130, res.output
    line = [ln for ln in res.output.splitlines() if ln.startswith("interrupted")][0]
    assert "nothing saved" in line and "--resume" not in line
    assert shlex.split(line.split("start again with: ")[1])[:2] == ["jcas", "train"]


def test_run_resume_continues_training_then_cleaning(base, tmp_path, monkeypatch):
    out = tmp_path / "out"
    args = [
        "run",
        str(base / "ds"),
        "--out",
        str(out),
        "--config",
        str(base / "tiny2.yaml"),
        "--init",
        "none",
        "--device",
        "cpu",
    ]
    res = runner.invoke(app, [*args, "--resume"])
    assert res.exit_code == 2 and "nothing to resume" in res.output
    monkeypatch.setattr("jcas_napari.core.train.run_sync", interrupt_after("epoch"))
    res = runner.invoke(app, args)
    assert res.exit_code == 130, res.output
    line = [ln for ln in res.output.splitlines() if ln.startswith("interrupted")][0]
    command = shlex.split(line.split("resume with: ")[1])
    assert command[:2] == ["jcas", "run"] and command[-1] == "--resume"
    monkeypatch.undo()
    res = runner.invoke(app, [*args, "--folds", "2", "--resume"])
    assert res.exit_code == 2 and "trained with one model" in res.output
    res = runner.invoke(app, command[1:])
    assert res.exit_code == 0, res.output
    last = load_checkpoint(out / "run" / "checkpoints" / "last.pt")
    assert [h["epoch"] for h in last["history"]] == [0, 1]
    assert len(list((out / "masks").rglob("*.png"))) == 4
    res = runner.invoke(app, args)  # again, without --resume: refused
    assert res.exit_code == 2 and "already holds a trained run" in res.output
    res = runner.invoke(app, command[1:])  # resumed once more: nothing to redo
    assert res.exit_code == 0 and "already done by an earlier run were kept" in res.output


# ------------------------------------------------------------------ --init, checkpoints


def test_init_note_says_the_checkpoint_decides_the_architecture(base, tmp_path):
    res = runner.invoke(
        app,
        [
            "train",
            str(base / "ds"),
            "--out",
            str(tmp_path / "ft"),
            "--config",
            str(base / "tiny1.yaml"),
            "--init",
            str(shipped_model()),
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    note = [ln for ln in res.output.splitlines() if "come from the checkpoint" in ln]
    assert len(note) == 1 and "input.height 64 (checkpoint: 128)" in note[0]
    saved = load_checkpoint(tmp_path / "ft" / "checkpoints" / "last.pt")["config"]
    assert saved["input"]["height"] == 128 and saved["train"]["batch_size"] == 2


def mismatched(src: Path, dst: Path) -> Path:
    """A checkpoint whose config (width 64) disagrees with its weights (width 32)."""
    ckpt = dict(torch.load(src, weights_only=True))
    ckpt["config"]["model"]["width"] = 64
    torch.save(ckpt, dst)
    return dst


def test_checkpoint_whose_config_disagrees_with_its_weights(base, trained, tmp_path):
    bad = mismatched(trained / "checkpoints" / "last.pt", tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as err:
        model_from_checkpoint(load_checkpoint(bad))
    assert str(err.value).startswith(str(bad)) and "\n" not in str(err.value)
    assert "tensors differ in shape" in str(err.value)
    with pytest.raises(CheckpointError, match="bad.pt: the weights do not fit"):
        model_from_checkpoint(dict(torch.load(bad, weights_only=True)), bad)
    resumed = tmp_path / "run" / "checkpoints"
    resumed.mkdir(parents=True)
    mismatched(trained / "checkpoints" / "last.pt", resumed / "last.pt")
    for args in (
        ["clean", str(base / "ds"), "--model", str(bad), "--out", str(tmp_path / "o")],
        train_args(base, tmp_path / "r2", "--init", str(bad)),
        ["train", str(base / "ds"), "--out", str(tmp_path / "run"), "--resume"],
    ):
        res = runner.invoke(app, args)
        assert res.exit_code == 2, res.output
        assert len(error_lines(res.output)) == 1 and "do not fit" in res.output
        assert "size mismatch" not in res.output and "Traceback" not in res.output


# ------------------------------------------------------------------ config validation


@pytest.mark.parametrize(
    "section, key, value, expect",
    [
        ("train", "lr", "abc", "must be a number > 0"),
        ("train", "lr", -0.1, "must be a number > 0"),
        ("train", "lr", float("nan"), "must be a number > 0"),
        ("train", "batch_size", 0, "whole number >= 1"),
        ("train", "batch_size", 2.5, "whole number >= 1"),
        ("train", "batch_size", True, "whole number >= 1"),
        ("train", "epochs_warmup", -1, "whole number >= 0"),
        ("train", "epochs_jcas", "3", "whole number >= 0"),
        ("train", "min_steps_jcas", -5, "whole number >= 0"),
        ("train", "optimizer", "rmsprop", "one of sgd, adam"),
        ("train", "t_optimizer", "lbfgs", "one of adam, sgd"),
        ("train", "t_init", "random", "one of anchor, paper"),
        ("train", "val_fraction", 1.0, "< 1"),
        ("train", "flip", "yes", "true or false"),
        ("train", "stretch_stage2", "often", "true or false"),
        ("train", "steps_per_epoch", 0, "null or a whole number >= 1"),
        ("affinity", "grid", [8], "a list of 2 positive whole numbers"),
        ("affinity", "grid", [8, 0], "a list of 2 positive whole numbers"),
        ("affinity", "grid", "8x10", "a list of 2 positive whole numbers"),
        ("affinity", "chunk", 0, "whole number >= 1"),
        ("model", "depth", 19, "one of [18, 34, 50, 101]"),
        ("model", "embed_dims", [32], "a list of 2 positive whole numbers"),
        ("input", "height", 100000, "a whole number in [16, 8192]"),
        ("loss", "vol", -1, "a number >= 0"),
    ],
)
def test_bad_config_values_name_the_file_and_the_key(tmp_path, section, key, value, expect):
    raw = tiny_config(1, 1).to_dict()
    raw[section][key] = value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError) as err:
        load_config(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: {section}.{key} must be") and expect in msg, msg


def test_config_shapes_and_good_values():
    with pytest.raises(ValueError, match="x.yaml: a config must be a mapping"):
        Config.from_dict([1, 2], "x.yaml")
    with pytest.raises(ValueError, match="x.yaml: 'train' must be a mapping"):
        Config.from_dict({"train": [1]}, "x.yaml")
    # PyYAML reads 1e-4 (no dot) as text: it still means the number.
    cfg = Config.from_dict(yaml.safe_load("train: {lr: 1e-4, t_lr: 0}\naffinity: {grid: [4, 5]}"))
    assert cfg.train.lr == 1e-4 and cfg.affinity.grid == (4, 5)
    for name in ("small", "deeplab-r101"):
        assert Config.from_dict(load_config(name).to_dict()) == load_config(name)
    Config.from_dict(load_checkpoint(shipped_model())["config"], "shipped")
    for section, typ in (
        ("model", "ModelConfig"),
        ("input", "InputConfig"),
        ("affinity", "AffinityConfig"),
        ("loss", "LossWeights"),
        ("train", "TrainConfig"),
    ):
        import jcas_napari.core.config as config_mod

        assert set(RULES[section]) == {f.name for f in fields(getattr(config_mod, typ))}
    from jcas_napari.core.model import LAYOUTS

    assert tuple(sorted(LAYOUTS)) == DEPTHS


def test_two_cleans_never_write_one_folder_at_once(base, tmp_path):
    """A second clean into a folder that another clean holds is refused, not mixed in."""
    import fcntl

    from jcas_napari.assets import shipped_model

    out = tmp_path / "out"
    out.mkdir()
    args = [
        "clean",
        str(base / "ds"),
        "--model",
        str(shipped_model()),
        "--out",
        str(out),
        "--device",
        "cpu",
    ]
    with open(out / ".jcas.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the other run
        res = runner.invoke(app, args)
        assert res.exit_code == 2 and "another jcas clean is writing" in res.output
        assert "Traceback" not in res.output and not (out / "masks").exists()
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert (out / "scores.csv").is_file()


def test_evaluate_reads_tiff_stacks_and_points_rgb_truth_to_classes(tmp_path):
    import numpy as np
    import tifffile
    from PIL import Image

    from jcas_napari.data.io import write_mask

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, (3, 16, 20), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "masks_clean.tif", truth, photometric="minisblack")
    for i, m in enumerate(truth):
        write_mask(tmp_path / "pred" / f"f{i}.png", m)
    stack = str(tmp_path / "masks_clean.tif")
    res = runner.invoke(app, ["evaluate", str(tmp_path / "pred"), stack])
    assert res.exit_code == 0, res.output
    assert '"mean_dice": 1.0' in res.output
    rgb = np.zeros((16, 20, 3), np.uint8)
    rgb[..., 0] = 200
    (tmp_path / "rgb").mkdir()
    Image.fromarray(rgb).save(tmp_path / "rgb" / "f0.png")
    res = runner.invoke(app, ["evaluate", str(tmp_path / "rgb"), str(tmp_path / "rgb")])
    assert res.exit_code == 2 and "--classes" in res.output and "Traceback" not in res.output
