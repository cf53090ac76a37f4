"""Faults: kill -9 during train and clean, a failing disk, GPU out-of-memory (injected)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from test_train import tiny_config, tree_hash
from typer.testing import CliRunner

from jcas_napari.cli import app
from jcas_napari.core.checkpoint import load_checkpoint
from jcas_napari.core.train import run_sync, train
from jcas_napari.data.io import open_dataset, read_mask
from jcas_napari.data.make import make_dataset

JCAS = [sys.executable, "-m", "jcas_napari.cli"]
MODEL = Path(__file__).resolve().parents[1] / "models" / "jcas-small-synthetic.pt"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults") / "ds"
    make_dataset(root, sequences=3, frames=6, size=(64, 80), noise="mix", seed=5)
    return root


def wait_for(cond, timeout: float = 120) -> None:
    t0 = time.time()
    while not cond():
        if time.time() - t0 > timeout:
            raise TimeoutError
        time.sleep(0.05)


def test_kill_9_during_train_then_resume(data, tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(2, 4).to_dict()))
    run = tmp_path / "run"
    before = tree_hash(data)
    args = [*JCAS, "train", str(data), "--out", str(run), "--config", str(cfg), "--device", "cpu"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = run / "checkpoints" / "last.pt"
    wait_for(lambda: last.exists() or proc.poll() is not None)
    assert proc.poll() is None, "training finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(last)["epoch"]  # the last complete epoch survived
    assert killed_at < 5
    res = subprocess.run([*args, "--resume"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-1500:]
    ckpt = load_checkpoint(last)
    assert ckpt["epoch"] == 5 and ckpt["stage"] == 2
    epochs = [h["epoch"] for h in ckpt["history"]]
    assert epochs == list(range(6))  # nothing lost beyond the interrupted epoch, no repeats
    assert not list(last.parent.glob(".*tmp"))
    assert tree_hash(data) == before


def test_kill_9_during_clean_then_rerun(tmp_path):
    big = tmp_path / "big"
    make_dataset(big, sequences=2, frames=30, size=(128, 160), noise="mix", seed=6)
    out = tmp_path / "out"
    before = tree_hash(big)
    args = [*JCAS, "clean", str(big), "--model", str(MODEL), "--out", str(out), "--device", "cpu"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: len(list((out / "scores").rglob("*.json"))) >= 8 or proc.poll() is not None)
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert killed, "cleaning finished before it could be killed"
    done_before = len(list((out / "scores").rglob("*.json")))
    res = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-1500:]
    assert 0 < done_before < 60
    assert f"({done_before} frames already done" in res.stdout
    for folder in ("masks", "changes", "confidence"):
        files = sorted((out / folder).rglob("*.png"))
        assert len(files) == 60
        for f in files:  # every file decodes: nothing half-written
            with Image.open(f) as im:
                im.load()
        if folder == "masks":
            read_mask(files[0])
    assert not list(out.rglob(".*tmp"))
    assert len((out / "scores.csv").read_text().splitlines()) == 61
    assert tree_hash(big) == before


def test_failing_disk_reports_and_leaves_no_partial_file(data, tmp_path, monkeypatch):
    import jcas_napari.data.io as io_mod

    real = os.replace
    calls = {"n": 0}

    def flaky(src, dst):
        calls["n"] += 1
        if calls["n"] > 7:
            raise OSError(28, "No space left on device")
        return real(src, dst)

    before = tree_hash(data)
    monkeypatch.setattr(io_mod.os, "replace", flaky)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["clean", str(data), "--model", str(MODEL), "--out", str(out)])
    assert res.exit_code == 2 and "No space left on device" in res.output
    assert "Traceback" not in res.output
    assert not list(out.rglob(".*tmp"))  # the temporary file of the failed write is gone
    for f in out.rglob("*.png"):
        with Image.open(f) as im:
            im.load()
    assert tree_hash(data) == before


def test_out_of_memory_halves_the_batch(data, tmp_path, monkeypatch):
    import jcas_napari.core.train as train_mod

    real = train_mod.jcas_step
    sizes = []

    def oom_once(net, images, *args, **kwargs):
        sizes.append(images.shape[0])
        if len(sizes) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return real(net, images, *args, **kwargs)

    monkeypatch.setattr(train_mod, "jcas_step", oom_once)
    cfg = tiny_config(1, 0)
    cfg.train.batch_size = 4
    events = []
    res = run_sync(train(open_dataset(data), cfg, tmp_path / "run"), events.append)
    assert res.best is not None
    messages = [e.val["message"] for e in events if e.kind == "message"]
    assert messages == ["out of memory: batch size halved to 2"]
    assert sizes[0] == 4 and set(sizes[1:]) == {2}
    assert np.isfinite([e.losses["total"] for e in events if e.kind == "step"]).all()
