"""One pipeline for the CLI and the GUI: folds chosen by size, out-of-sample cleaning."""

from __future__ import annotations

import pytest
import yaml
from test_review_safety import add_data
from test_train import tiny_config
from typer.testing import CliRunner

import jcas_napari.core.pipeline as pipeline
from jcas_napari.cli import app
from jcas_napari.core.train import run_sync
from jcas_napari.data.io import open_dataset
from jcas_napari.data.make import make_dataset


def test_in_sample_by_default_out_of_sample_when_asked():
    """Out-of-sample is opt-in: on 48-120 frames it cleaned worse (RESULTS.md)."""
    assert pipeline.choose_folds() == 1
    assert pipeline.choose_folds(3) == 3
    with pytest.raises(ValueError):
        pipeline.choose_folds(0)


def test_every_frame_is_cleaned_by_a_model_that_never_trained_on_it(tmp_path):
    make_dataset(tmp_path / "ds", sequences=4, frames=2, size=(64, 80), noise="ellipse", seed=2)
    ds = open_dataset(tmp_path / "ds")
    trained_on = []
    real_train = pipeline.train

    def spy(dataset, config, run_dir, **kw):
        trained_on.append(set(kw["train_indices"]))
        return (yield from real_train(dataset, config, run_dir, **kw))

    pipeline.train = spy
    try:
        fitted = run_sync(
            pipeline.fit(ds, tiny_config(1, 1), tmp_path / "run", folds=2, device="cpu")
        )
    finally:
        pipeline.train = real_train
    held = [set(idx) for _, idx in fitted.models]
    assert fitted.folds == 2 and sorted(i for h in held for i in h) == list(range(len(ds)))
    assert all(not (h & t) for h, t in zip(held, trained_on))
    seqs = ds.sequences()
    assert all(any(set(v) <= h for h in held) for v in seqs.values())  # whole sequences
    results = list(pipeline.clean_models(ds, fitted.models, device="cpu"))
    assert sorted(r.index for r in results) == list(range(len(ds)))


def test_cli_run_calls_the_core_pipeline(tmp_path, monkeypatch):
    make_dataset(tmp_path / "ds", sequences=4, frames=8, size=(64, 80), noise="ellipse", seed=3)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(1, 0).to_dict()))
    calls = []
    real_fit = pipeline.fit

    def spy(ds, config, run_dir, **kw):
        calls.append(kw["folds"])
        return (yield from real_fit(ds, config, run_dir, **kw))

    monkeypatch.setattr(pipeline, "fit", spy)
    res = CliRunner().invoke(
        app,
        [
            "run",
            str(tmp_path / "ds"),
            "--out",
            str(tmp_path / "out"),
            "--config",
            str(cfg),
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    assert calls == [1] and "cleaning in-sample" in res.output  # the default
    assert (tmp_path / "out" / "run" / "checkpoints" / "best.pt").exists()  # one model
    assert len(list((tmp_path / "out" / "masks").rglob("*.png"))) == 32


def test_gui_training_calls_the_core_pipeline(make_napari_viewer, qtbot, monkeypatch, tmp_path):
    from jcas_napari.napari.trainer import TrainerWidget

    viewer = make_napari_viewer()
    add_data(viewer, 4, root=str(tmp_path))
    trainer = TrainerWidget(viewer)
    seen = []

    def fake_fit(ds, config, run_dir, **kw):
        seen.append((len(ds), kw.get("init_checkpoint")))
        yield from ()
        return pipeline.FitResult(models=[(tmp_path / "model.pt", None)])

    monkeypatch.setattr(pipeline, "fit", fake_fit)
    monkeypatch.setattr(trainer, "clean", lambda: None)
    trainer.start()
    qtbot.waitUntil(lambda: trainer.start_btn.isEnabled(), timeout=30_000)
    assert seen and seen[0][0] == 4
    assert trainer.session.models == [(str(tmp_path / "model.pt"), None)]
