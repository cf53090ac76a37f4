"""Training engine: resume equivalence, cancel, checkpoints, splits, DDP."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from jcas_napari.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from jcas_napari.core.config import load_config
from jcas_napari.core.steps import stage2_epochs, stretch_stage2
from jcas_napari.core.train import fold_splits, run_sync, split_by_sequence, train
from jcas_napari.core.transitions import label_signal
from jcas_napari.data.fingerprint import fingerprint
from jcas_napari.data.io import open_dataset
from jcas_napari.data.make import make_dataset


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny") / "ds"
    make_dataset(root, sequences=3, frames=4, size=(64, 80), noise="symmetric50", seed=3)
    return open_dataset(root)


def tiny_config(warmup=1, jcas=1):
    cfg = load_config("small")
    cfg.input.height, cfg.input.width = 64, 80
    cfg.affinity.grid = (8, 10)
    cfg.train.batch_size = 2
    cfg.train.epochs_warmup, cfg.train.epochs_jcas = warmup, jcas
    cfg.train.stretch_stage2 = False  # tiny's flipped labels would stretch stage 2; own test
    return cfg


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def test_split_by_sequence_and_folds():
    seqs = {"a": [0, 1], "b": [2, 3], "c": [4, 5], "d": [6, 7]}
    train_idx, val = split_by_sequence(seqs, 0.25, seed=0)
    assert len(val) == 2 and sorted(train_idx + val) == list(range(8))
    held = [n for n, idx in seqs.items() if idx[0] in val]
    assert len(held) == 1 and set(seqs[held[0]]) == set(val)  # a whole sequence
    assert split_by_sequence({"x": list(range(8))}, 0.25, 0) == (list(range(6)), [6, 7])
    folds = fold_splits(seqs, 2, seed=0)
    assert sorted(folds[0] + folds[1]) == list(range(8)) and len(folds[0]) == 4
    with pytest.raises(ValueError, match="3 folds need at least 3 sequences"):
        fold_splits({"a": [0], "b": [1]}, 3, 0)


def test_stage2_floor_counts_steps_and_says_so(tiny, tmp_path):
    epochs, note = stage2_epochs(5, 150, 9)
    assert epochs == 17 and "17 epochs, not 5" in note
    assert stage2_epochs(20, 150, 9) == (20, None)  # enough steps already
    assert stage2_epochs(0, 150, 9) == (0, None)  # no stage 2 asked for
    assert stage2_epochs(5, 0, 9) == (5, None)  # floor off
    assert stage2_epochs(1, 12, 1)[1].endswith("at 1 step per epoch")
    cfg = tiny_config(1, 1)
    cfg.train.min_steps_jcas = 10  # 8 training frames, batch 2: 4 steps per epoch
    events = []
    res = run_sync(train(tiny, cfg, tmp_path / "run"), events.append)
    notes = [e.val["message"] for e in events if e.kind == "message"]
    assert notes == [
        "stage 2 runs 3 epochs, not 1: at least 10 steps (train.min_steps_jcas) "
        "at 4 steps per epoch"
    ]
    assert [e.stage for e in events if e.kind == "epoch"] == [1, 2, 2, 2]
    assert sum(e.kind == "step" and e.stage == 2 for e in events) == 12 and not res.cancelled


def test_label_signal_and_stretch_of_stage_two():
    k4 = np.full((4, 4), 0.5 / 3) + np.eye(4) * (0.5 - 0.5 / 3)  # symmetric flips at 0.5
    prior = np.array([0.7, 0.1, 0.1, 0.1])
    assert label_signal(np.eye(4), prior) == pytest.approx(1.0)
    assert label_signal(k4, prior) == pytest.approx(1 - 0.5 * 4 / 3)
    tied = np.array([[0.5, 0.5], [0.0, 1.0]])  # class 0 labelled 1 as often as 0
    assert label_signal(tied, np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert label_signal(tied, np.array([1.0, 0.0])) == pytest.approx(0.0)
    plan = [1, 1, 1] + [2] * 5
    assert stretch_stage2(plan, 0.51) == (plan, None)  # border-like noise: unchanged
    longer, note = stretch_stage2(plan, 0.4)  # 1 / 0.4 = 2.5 -> 13 epochs
    assert longer == [1, 1, 1] + [2] * 13 and "stage 2 runs 13 epochs, not 5" in note
    assert stretch_stage2(plan, 0.05)[0].count(2) == 15  # at most 3x
    assert stretch_stage2([1, 1], 0.1) == ([1, 1], None)  # no stage 2 asked for


def test_flipped_labels_stretch_stage_two_and_resume_keeps_it(tiny, tmp_path):
    cfg = tiny_config(1, 2)
    cfg.train.stretch_stage2 = True
    events = []
    res = run_sync(train(tiny, cfg, tmp_path / "run"), events.append)
    notes = [e.val["message"] for e in events if e.kind == "message"]
    stages = [e.stage for e in events if e.kind == "epoch"]
    assert len(notes) == 1 and "labels look heavily flipped" in notes[0], notes
    n = stages.count(2)
    assert stages == [1] + [2] * n and 2 < n <= 6 and f"runs {n} epochs, not 2" in notes[0]
    steps = [e for e in events if e.kind == "step"]
    assert steps[-1].step == steps[-1].steps_total == len(steps) == 4 * (1 + n)
    assert load_checkpoint(res.last, 4)["schedule"] == [1] + [2] * n
    cut = []  # cancelled in stage 2's second epoch, then resumed: the same longer schedule
    gen = train(tiny, cfg, tmp_path / "again", should_stop=lambda: len(cut) >= 10)
    run_sync(gen, lambda e: cut.append(e) if e.kind == "step" else None)
    more = []
    run_sync(train(tiny, cfg, tmp_path / "again", resume=True), more.append)
    assert [e.stage for e in more if e.kind == "epoch"] == [2] * (n - 1)
    assert not [e for e in more if e.kind == "message"]  # stretched once, not twice
    cfg.train.stretch_stage2 = False
    off = []
    run_sync(train(tiny, cfg, tmp_path / "off"), off.append)
    assert [e.stage for e in off if e.kind == "epoch"] == [1, 2, 2]


def test_train_writes_checkpoints_logs_and_events(tiny, tmp_path):
    events = []
    res = run_sync(train(tiny, tiny_config(1, 2), tmp_path / "run"), events.append)
    assert not res.cancelled and res.best.exists() and res.last.exists()
    steps = [e for e in events if e.kind == "step"]
    epochs = [e for e in events if e.kind == "epoch"]
    assert [e.stage for e in epochs] == [1, 2, 2]
    assert steps[-1].step == steps[-1].steps_total == len(steps)
    assert np.allclose(steps[-1].t_c.sum(1), 1) and steps[-1].t_c.shape == (4, 4)
    assert all("val_noisy_acc" in e.val and "val_clean_miou" in e.val for e in epochs)
    ckpt = load_checkpoint(res.best, 4)
    assert ckpt["class_names"] == ["background", "shaft", "wrist", "clasper"]
    assert ckpt["stage"] == 2 and ckpt["thresholds"].shape == (4,)
    train_idx, val_idx = split_by_sequence(tiny.sequences(), 0.25, 0)
    digests = {tiny.ids[i]: fingerprint(tiny[i].image) for i in train_idx}
    assert val_idx and ckpt["trained_on"] == digests and len(set(digests.values())) == 8
    lines = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert len(lines) == 4 and lines[0].startswith("epoch,stage,lr")
    import json

    trans = json.loads((tmp_path / "run" / "transitions.json").read_text())
    assert [t["stage"] for t in trans] == [1, 2, 2] and np.allclose(np.sum(trans[2]["t_c"], 1), 1)


def test_resume_after_interruption_gives_the_same_model(tiny, tmp_path):
    cfg = tiny_config(2, 2)
    full = run_sync(train(tiny, cfg, tmp_path / "full", seed=5))
    ev = []

    def stop_mid_third_epoch() -> bool:
        # One step of epoch 2 has run; its result must be thrown away on resume.
        return any(e.kind == "step" and e.epoch == 2 for e in ev)

    gen = train(tiny, cfg, tmp_path / "part", seed=5, should_stop=stop_mid_third_epoch)
    part = run_sync(gen, ev.append)
    assert part.cancelled
    assert load_checkpoint(tmp_path / "part" / "checkpoints" / "last.pt")["epoch"] == 1
    resumed = run_sync(train(tiny, cfg, tmp_path / "part", resume=True))
    a = load_checkpoint(full.last)["model"]
    b = load_checkpoint(resumed.last)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5, msg=k)
    np.testing.assert_allclose(full.t_c, resumed.t_c, atol=1e-6)


def test_cancel_keeps_the_last_good_checkpoint(tiny, tmp_path):
    cfg = tiny_config(1, 1)
    run_sync(train(tiny, cfg, tmp_path / "run", seed=1))
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    before = last.read_bytes()
    calls = {"n": 0}

    def stop_soon() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    res = run_sync(
        train(
            tiny, tiny_config(1, 1), tmp_path / "run", seed=2, resume=False, should_stop=stop_soon
        )
    )
    assert res.cancelled and calls["n"] == 3
    assert last.read_bytes() == before  # nothing written mid-epoch
    load_checkpoint(last, 4)
    assert not list(last.parent.glob(".*tmp"))


def test_wrong_checkpoints_give_clear_errors(tiny, tmp_path):
    res = run_sync(train(tiny, tiny_config(1, 0), tmp_path / "run"))
    with pytest.raises(CheckpointError, match="checkpoint has 4 classes .* the dataset has 3"):
        load_checkpoint(res.best, 3)
    ckpt = load_checkpoint(res.best)
    save_checkpoint(tmp_path / "new.pt", ckpt)
    raw = torch.load(tmp_path / "new.pt", weights_only=True)
    raw["format_version"] = 99
    torch.save(raw, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="format version 99 is newer"):
        load_checkpoint(tmp_path / "new.pt")
    data = res.best.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="trunc.pt: unreadable or truncated"):
        load_checkpoint(tmp_path / "trunc.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a jcas-napari checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {EVIL_MARK}",))


EVIL_MARK = Path("/tmp/jcas_evil_pickle_ran")


def test_malicious_pickle_is_refused_without_running_code(tmp_path):
    EVIL_MARK.unlink(missing_ok=True)
    torch.save({"model": _Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not EVIL_MARK.exists()


@pytest.mark.skipif(
    shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
    reason="torchrun not installed",
)
def test_ddp_two_cpu_processes(tiny, tmp_path):
    cfg_path = tmp_path / "tiny.yaml"
    import yaml

    cfg = tiny_config(1, 1)
    cfg.train.stretch_stage2 = True  # both ranks must take rank 0's longer schedule
    cfg_path.write_text(yaml.safe_dump(cfg.to_dict()))
    torchrun = str(Path(sys.executable).parent / "torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "jcas_napari.cli",
            "train",
            str(tiny.root),
            "--out",
            str(tmp_path / "ddp"),
            "--config",
            str(cfg_path),
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.count("best model:") == 2  # both ranks finished
    ckpt = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "best.pt", 4)
    assert ckpt["stage"] == 2
    n = ckpt["schedule"].count(2)
    assert n > 1 and f"stage 2 runs {n} epochs, not 1" in res.stdout + res.stderr
    from jcas_napari.core.checkpoint import model_from_checkpoint

    net, _ = model_from_checkpoint(ckpt)
    assert sum(p.numel() for p in net.parameters()) > 0


def test_export_then_fine_tune_from_it(tiny, tmp_path):
    from jcas_napari.core.checkpoint import export_checkpoint, model_from_checkpoint

    res = run_sync(train(tiny, tiny_config(1, 1), tmp_path / "run"))
    small = export_checkpoint(res.best, tmp_path / "small.pt")
    assert small.stat().st_size < 0.6 * res.best.stat().st_size  # fp16, no optimiser state
    ckpt = load_checkpoint(small, 4)
    assert "optimiser" not in ckpt and ckpt["model"]["cls2.branches.0.weight"].dtype == torch.half
    assert len(ckpt["trained_on"]) == 8  # 2 of 3 sequences x 4 frames: the rule's T uses them
    net, _ = model_from_checkpoint(ckpt)
    assert next(net.parameters()).dtype == torch.float32
    # Fine-tune: stage 2 only, from the exported weights; a stale best.pt must not be used.
    stale = tmp_path / "ft" / "checkpoints"
    stale.mkdir(parents=True)
    (stale / "best.pt").write_bytes(b"stale")
    cfg = load_config("small")  # another input size: the checkpoint's architecture wins
    cfg.train.epochs_warmup, cfg.train.epochs_jcas, cfg.train.batch_size = 0, 1, 2
    ft = run_sync(train(tiny, cfg, tmp_path / "ft", init_checkpoint=small))
    out = load_checkpoint(ft.best, 4)
    assert out["config"]["input"]["height"] == 64 and out["stage"] == 2


@pytest.mark.parametrize(("method", "dar"), [("jcas", True), ("volmin", False)])
def test_stage_two_t_start_predicts_as_the_method_does(tiny, tmp_path, monkeypatch, method, dar):
    """The anchor start of T_C reads the warm-up model as it will be used: with DAR for
    JCAS, without for VolMin (whose affinity branch is never trained)."""
    import jcas_napari.core.steps as steps

    seen = []
    real = steps.validate

    def spy(*args, **kw):
        seen.append(args[7] if len(args) > 7 else kw.get("refine", True))
        return real(*args, **kw)

    monkeypatch.setattr(steps, "validate", spy)
    run_sync(train(tiny, tiny_config(1, 1), tmp_path / "run", device="cpu", method=method))
    assert seen == [dar]
