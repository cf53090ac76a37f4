"""``jcas clean`` under torchrun: two gloo processes on the CPU write what one process writes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jcas_napari import shard
from jcas_napari.assets import shipped_model
from jcas_napari.data.make import make_dataset

TORCHRUN = Path(sys.executable).parent / "torchrun"
needs_torchrun = pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed")


def _clean(dataset: Path, out: Path, ranks: int) -> subprocess.CompletedProcess:
    """``jcas clean`` with the shipped model, in 1 process or under torchrun with ``ranks``."""
    launch = [sys.executable, "-m", "jcas_napari.cli"]
    if ranks > 1:
        launch = [
            str(TORCHRUN),
            "--standalone",
            f"--nproc_per_node={ranks}",
            "-m",
            "jcas_napari.cli",
        ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        *launch,
        "clean",
        str(dataset),
        "--model",
        str(shipped_model()),
        "--out",
        str(out),
        "--device",
        "cpu",
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".jcas.lock"
    }


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """A dataset the shipped model proposes changes on, cleaned by one process."""
    base = tmp_path_factory.mktemp("shard")
    # 3 sequences x 5 frames: the two shares split a sequence (neighbours cross the cut)
    # and one rank's last batch holds a single frame.
    make_dataset(base / "ds", sequences=3, frames=5, size=(96, 120), noise="ellipse", seed=3)
    res = _clean(base / "ds", base / "one", 1)
    assert res.returncode == 0, res.stderr[-2000:]
    return base


@needs_torchrun
def test_two_ranks_write_the_bytes_of_one_process(single):
    res = _clean(single / "ds", single / "two", 2)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.count("wrote 15 cleaned masks") == 1  # rank 0 reports, once
    one, two = _files(single / "one"), _files(single / "two")
    assert sorted(one) == sorted(two)
    assert [k for k in one if one[k] != two[k]] == []  # masks, changes, scores.csv, report
    rows = (single / "one" / "scores.csv").read_text().splitlines()[1:]
    assert any(float(r.split(",")[3]) > 0 for r in rows)  # the model did change pixels


@needs_torchrun
def test_two_ranks_resume_and_redo_another_models_frames(single, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(single / "one", out)
    sidecars = sorted((out / "scores").rglob("*.json"))
    for p in sidecars[:4]:  # never finished: redone
        p.unlink()
    for p in sidecars[4:6]:  # finished by another model: redone with this one
        row = json.loads(p.read_text())
        p.write_text(json.dumps({**row, "model": "sha256:another"}))
    for p in sidecars[:6]:
        mask = out / "masks" / p.relative_to(out / "scores").with_suffix(".png")
        mask.write_bytes(b"stale")
    (out / "scores.csv").unlink()
    res = _clean(single / "ds", out, 2)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "(9 frames already done by an earlier run were kept)" in res.stdout
    assert _files(out) == _files(single / "one")


@needs_torchrun
def test_a_held_lock_refuses_every_rank(single, tmp_path):
    from jcas_napari.output_state import output_lock

    out = tmp_path / "busy"
    with output_lock(out):
        res = _clean(single / "ds", out, 2)
    assert res.returncode != 0
    assert res.stderr.count("another jcas clean is writing into this folder") == 2
    assert not (out / "masks").exists()


def test_shares_are_contiguous_and_cover_the_work(monkeypatch):
    models = [("a.pt", [0, 1, 2, 3, 4]), ("b.pt", [5, 6, 7, 8]), ("c.pt", None)]
    done = {("a.pt", 1), ("b.pt", 6)}

    def finished(i, ckpt):
        return (str(ckpt), i) in done

    shares = []
    for r in range(3):
        monkeypatch.setattr(shard, "rank", lambda r=r: r)
        monkeypatch.setattr(shard, "world", lambda: 3)
        skip = shard.share(10, models, finished)
        shares.append([(m, i) for m, idx in models for i in (idx or range(10)) if not skip(i, m)])
    work = [(m, i) for m, idx in models for i in (idx or range(10)) if not finished(i, m)]
    assert [w for s in shares for w in s] == work  # in order, each once
    assert [len(s) for s in shares] == [5, 6, 6]
