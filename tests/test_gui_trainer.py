"""The trainer widget, headless (xvfb): its parts, pickers, layout, opening, progress,
model saving, run folders and error messages (issues 11 and 13).

Set JCAS_WRITE_DOCS=1 to write docs/trainer.png (the trainer docked, mid-training).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


@pytest.fixture
def seen(monkeypatch) -> list[str]:
    """Every notification: napari's show_* and its worker-error relay."""
    import napari.utils.notifications as nt

    out: list[str] = []
    for name in ("show_info", "show_warning", "show_error"):
        monkeypatch.setattr(nt, name, out.append)
    monkeypatch.setattr(
        nt.notification_manager, "receive_error", lambda *args: out.append(f"relayed: {args[1]}")
    )
    return out


def add_small_data(viewer, root: str | None = None) -> None:
    """6 synthetic frames at 64x80 with their masks, as the reader names them."""
    from jcas_napari.data.synthetic import make_sequence
    from jcas_napari.napari.layers import labels_kwargs
    from jcas_napari.napari.names import FRAMES, USER_MASKS

    images, masks = make_sequence(6, np.random.default_rng(7), (64, 80), n_instruments=2)
    from jcas_napari.data.io import ClassInfo

    meta = {"dataset_root": root} if root else {}
    viewer.add_image(images, name=FRAMES, rgb=True, metadata=meta)
    viewer.add_labels(masks, **labels_kwargs(USER_MASKS, ClassInfo(), metadata=meta))


def make_trainer(viewer):
    from jcas_napari.napari.trainer import TrainerWidget

    return TrainerWidget(viewer)


# ---------------------------------------------------------------------- item 1: the split


def test_trainer_entry_point_and_its_parts(viewer):
    from importlib.resources import files

    import yaml
    from magicgui.widgets import Container

    from jcas_napari.napari.results_view import ResultsView
    from jcas_napari.napari.trainer import TrainerWidget

    manifest = yaml.safe_load((files("jcas_napari") / "napari.yaml").read_text())
    commands = {c["id"]: c["python_name"] for c in manifest["contributions"]["commands"]}
    assert commands["jcas-napari.trainer"] == "jcas_napari.napari.trainer:TrainerWidget"
    trainer = TrainerWidget(viewer)
    assert isinstance(trainer.form, Container)  # magicgui inputs
    assert isinstance(trainer.results, ResultsView) and trainer.table is trainer.results
    for name in ("trainer", "trainer_form", "trainer_worker", "results_view"):
        path = Path(__file__).resolve().parents[1] / "jcas_napari" / "napari" / f"{name}.py"
        assert len(path.read_text().splitlines()) <= 400


def test_samples_use_the_shared_layer_names(viewer):
    from jcas_napari.napari.names import FRAMES, NOISY_MASKS, TRUTH_MASKS

    viewer.open_sample("jcas-napari", "noisy-sequence")
    assert [lay.name for lay in viewer.layers] == [FRAMES, TRUTH_MASKS, NOISY_MASKS]


# ---------------------------------------------------------------------- item 2: the form


def test_layer_pickers_follow_the_layer_list(viewer):
    trainer = make_trainer(viewer)
    assert trainer.form.frames.value is None and trainer.form.masks.value is None
    add_small_data(viewer)
    assert trainer.form.frames.value is viewer.layers["frames"]
    assert trainer.form.masks.value is viewer.layers["masks"]
    viewer.add_labels(np.zeros((6, 64, 80), np.uint8), name="corrected")  # a result layer
    viewer.add_labels(np.zeros((6, 64, 80), np.uint8), name="annotator B")
    names = [trainer.mask_combo.itemText(i) for i in range(trainer.mask_combo.count())]
    assert names == ["masks", "annotator B"]  # result layers are never inputs
    viewer.layers["annotator B"].name = "annotator C"  # a rename shows at once
    names = [trainer.mask_combo.itemText(i) for i in range(trainer.mask_combo.count())]
    assert names == ["masks", "annotator C"]
    viewer.layers.remove("masks")
    assert trainer.form.masks.value is viewer.layers["annotator C"]
    viewer.layers["annotator C"].metadata["ground_truth"] = True
    viewer.layers.remove("frames")  # any layer event: the truth is not the default
    assert trainer.form.masks.value is None and trainer.form.frames.value is None
    with pytest.raises(ValueError, match="choose the frames layer"):
        trainer.form.selected_layers()


def test_every_control_has_a_tooltip_and_the_checkpoint_a_browse_button(viewer):
    from magicgui.widgets import FileEdit
    from qtpy.QtWidgets import QPushButton

    trainer = make_trainer(viewer)
    form = trainer.form
    for widget in form:
        if widget is not form.device_note:
            assert widget.tooltip, widget.label
    for button in trainer.findChildren(QPushButton):
        assert button.toolTip(), button.text()
    assert isinstance(form.checkpoint, FileEdit) and form.checkpoint.mode.value == "r"
    assert form.checkpoint.native.isHidden()  # shown only for "checkpoint file"
    form.model.value = "checkpoint file"
    assert not form.checkpoint.native.isHidden()
    assert "Save model…" in [b.text() for b in trainer.findChildren(QPushButton)]


def test_the_form_sets_the_schedule_the_run_uses(viewer):
    from jcas_napari.napari.trainer import SHIPPED

    trainer = make_trainer(viewer)  # kept: its form's widgets live as long as it does
    form = trainer.form
    cfg, init = form.config_and_init(SHIPPED)
    assert init == str(SHIPPED) and form.stretch.value is True
    assert (cfg.train.epochs_warmup, cfg.train.epochs_jcas) == (0, 2) and cfg.train.stretch_stage2
    form.warmup.value, form.jcas.value, form.min_steps.value = 1, 4, 30
    form.stretch.value = False  # the user can keep stage 2 at exactly its epochs
    tc = form.config_and_init(SHIPPED)[0].train
    assert (tc.epochs_warmup, tc.epochs_jcas, tc.min_steps_jcas) == (1, 4, 30)
    assert tc.stretch_stage2 is False


# ---------------------------------------------------------------------- item 3: layout


def test_trainer_is_compact_in_its_dock(viewer):
    from qtpy.QtWidgets import QScrollArea

    trainer = make_trainer(viewer)
    viewer.open_sample("jcas-napari", "noisy-sequence")
    viewer.window.add_dock_widget(trainer, name="JCAS trainer", area="right")
    assert trainer.minimumSizeHint().height() <= 450
    assert trainer.findChildren(QScrollArea), "the trainer scrolls instead of growing"
    assert trainer.sizeHint().height() <= 700


def test_a_short_dock_keeps_start_and_cancel_in_view(viewer, qtbot):
    """At a laptop's dock size (1366x768 with three docks: about 280x260) the form
    scrolls and the buttons, progress and status stay visible under it."""
    trainer = make_trainer(viewer)
    qtbot.addWidget(trainer)
    trainer.resize(280, 260)
    trainer.show()
    qtbot.wait(50)
    for widget in (trainer.start_btn, trainer.cancel_btn, trainer.progress, trainer.status):
        top_left = widget.mapTo(trainer, widget.rect().topLeft())
        assert widget.isVisible() and 0 <= top_left.y()
        assert top_left.y() + widget.height() <= trainer.height(), widget


# ---------------------------------------------------------------------- item 4: opening


def test_opening_the_trainer_leaves_torch_to_a_background_thread(tmp_path):
    """In a fresh process: the widget opens without importing torch on the GUI thread;
    the preload thread imports it, and the device list is filled in when it is done."""
    code = textwrap.dedent("""
        import importlib.abc, sys, threading, time
        seen = {}
        class Spy(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "torch" and "torch" not in seen:
                    seen["torch"] = threading.current_thread().name
                return None
        sys.meta_path.insert(0, Spy())
        import napari
        from qtpy.QtWidgets import QApplication
        viewer = napari.Viewer(show=False)
        t0 = time.perf_counter()
        from jcas_napari.napari.trainer import TrainerWidget
        trainer = TrainerWidget(viewer)
        print("OPEN_MS", round((time.perf_counter() - t0) * 1000))
        print("TORCH_AT_OPEN", "torch" in sys.modules and seen.get("torch") == "MainThread")
        app = QApplication.instance()
        deadline = time.time() + 120
        while trainer.form.device.choices == ("auto", "cpu") and time.time() < deadline:
            app.processEvents()
            time.sleep(0.05)
            from jcas_napari.napari import runtime
            if runtime.preload_devices() is not None:
                app.processEvents()
                break
        print("TORCH_THREAD", seen.get("torch"))
        print("DEVICES", list(trainer.form.device.choices))
        viewer.close()
    """)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = dict(line.split(" ", 1) for line in res.stdout.splitlines() if " " in line)
    assert out["TORCH_AT_OPEN"] == "False", out
    assert out["TORCH_THREAD"] == "jcas-preload", out
    assert "cpu" in out["DEVICES"], out


def test_sample_opens_from_the_shipped_file_without_generating(viewer, monkeypatch):
    from jcas_napari.napari import sample

    expected = sample.generate("asymmetric50")  # the shipped file is what the code makes
    shipped = sample.load("asymmetric50")
    for got, want in zip(shipped, expected):
        np.testing.assert_array_equal(got, want)

    def no_generating(*_args, **_kwargs):
        raise AssertionError("the sample was generated on the GUI thread")

    monkeypatch.setattr(sample, "generate", no_generating)
    viewer.open_sample("jcas-napari", "flip-sequence")
    noisy = viewer.layers["masks (noisy)"]
    np.testing.assert_array_equal(noisy.data, expected[2])
    np.testing.assert_allclose(noisy.metadata["true_t"], expected[3])


def test_workers_leave_qt_a_pool_thread(tmp_path):
    """Qt converts large images in its global thread pool for the GUI thread, which waits
    holding the GIL (napari's activity spinner does it when a task starts). With the pool
    full of workers that wait for the GIL, that was a deadlock (it hung the GUI tests on 2
    cores). In a subprocess: a pool of one thread, one busy Python worker, a conversion."""
    code = textwrap.dedent("""
        import threading, time
        from napari.qt.threading import create_worker
        from qtpy.QtCore import QThreadPool
        from qtpy.QtGui import QImage
        from qtpy.QtWidgets import QApplication
        from jcas_napari.napari.runtime import start_worker
        app = QApplication([])
        pool = QThreadPool.globalInstance()
        pool.setMaxThreadCount(1)
        stop, done = threading.Event(), []
        def spin():
            while not stop.is_set():
                sum(range(2000))
                yield
        worker = create_worker(spin)
        worker.finished.connect(lambda: done.append(1))
        start_worker(worker)
        deadline = time.time() + 30
        while pool.activeThreadCount() < 1 and time.time() < deadline:
            app.processEvents()
        big = QImage(1024, 1024, QImage.Format_RGB32)
        big.fill(0)
        print("CONVERTED", not big.scaled(700, 700, transformMode=1).isNull(), flush=True)
        stop.set()
        while not done and time.time() < deadline:
            app.processEvents()
    """)
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert "CONVERTED True" in res.stdout, res.stderr[-2000:]


# ------------------------------------------------- items 5 and 6: progress, run folders


def wait_idle(trainer, qtbot, timeout: int = 120_000) -> None:
    qtbot.waitUntil(
        lambda: trainer.start_btn.isEnabled() and not trainer._pending_layers, timeout=timeout
    )


def test_training_progress_has_numbers_and_only_the_model_in_use_is_kept(
    viewer, qtbot, tmp_path, seen
):
    add_small_data(viewer)
    trainer = make_trainer(viewer)
    trainer.form.jcas.value = 2
    trainer.form.min_steps.value = 3  # 4 training frames, batch 4: 3 stage-2 epochs, not 2
    steps = []
    trainer.session.progress.connect(lambda ev: ev.kind == "step" and steps.append(ev))
    trainer.start()
    pbar = trainer.worker.pbar  # napari's activity-panel bar of this run
    qtbot.waitUntil(lambda: len(steps) >= 1, timeout=60_000)
    assert pbar.total == steps[0].steps_total == 3  # a total, not a busy bar
    wait_idle(trainer, qtbot)
    assert steps and pbar.n == steps[-1].step == steps[-1].steps_total
    assert "jcas-napari: stage 2 runs 3 epochs, not 2: at least 3 steps" in " ".join(seen)
    assert "corrected" in viewer.layers and trainer.table.rowCount() == 6
    # The rule's T came from the 4 layer frames it trained on (the last 2 were held out).
    assert trainer.session.cleaner.t_frames == (4, True)
    first = Path(trainer.session.checkpoint)
    assert trainer.runs.folders() == [p for p in trainer.runs.folders() if p in first.parents]
    assert len(trainer.runs.folders()) == 1
    # A second run replaces the model: the first run's folder goes.
    trainer.start()
    wait_idle(trainer, qtbot)
    second = Path(trainer.session.checkpoint)
    assert second != first and not first.exists() and second.exists()
    assert len(trainer.runs.folders()) == 1
    # A cancelled run leaves no folder behind; the model in use stays.
    trainer.start()
    trainer.cancel()
    wait_idle(trainer, qtbot)
    assert trainer.session.checkpoint == str(second)
    assert trainer.runs.folders() == [p for p in trainer.runs.folders() if p in second.parents]
    assert not [s for s in seen if "error" in s.lower()], seen


def test_run_folders_go_when_the_viewer_closes(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    trainer = make_trainer(viewer)
    viewer.window.add_dock_widget(trainer, name="JCAS trainer", area="right")
    runs = [trainer.runs.new() for _ in range(3)]
    (runs[1] / "checkpoints").mkdir()
    best = runs[1] / "checkpoints" / "best.pt"
    best.write_bytes(b"model")
    trainer.session.checkpoint = str(best)
    trainer._on_finished(trainer._run_id)  # a run ended: only the model in use stays
    assert [p.exists() for p in runs] == [False, True, False]
    root = trainer.runs.root
    viewer.close()
    qtbot.waitUntil(lambda: not root.exists(), timeout=10_000)


def test_removing_the_dock_keeps_only_the_model_in_use(viewer):
    trainer = make_trainer(viewer)
    viewer.window.add_dock_widget(trainer, name="JCAS trainer", area="right")
    runs = [trainer.runs.new() for _ in range(2)]
    trainer.session.checkpoint = str(runs[0] / "best.pt")
    viewer.window.remove_dock_widget(trainer)  # napari's close button does this
    assert runs[0].exists() and not runs[1].exists()
    trainer.close()  # a closed widget keeps nothing
    assert not trainer.runs.root.exists()


# ---------------------------------------------------------------------- item 6: saving


def fake_fine_tuned(trainer) -> Path:
    from jcas_napari.napari.trainer import SHIPPED

    run = trainer.runs.new()
    ckpt = run / "best.pt"
    ckpt.write_bytes(SHIPPED.read_bytes())
    trainer.session.checkpoint = str(ckpt)
    trainer.session.models = [(str(ckpt), None)]
    trainer._set_running(False)
    return ckpt


def test_save_model_writes_the_checkpoint_where_asked_never_into_the_dataset(
    viewer, qtbot, tmp_path, monkeypatch, seen
):
    from jcas_napari.napari import trainer_worker

    root = tmp_path / "data" / "ds"
    root.mkdir(parents=True)
    add_small_data(viewer, root=str(root))
    trainer = make_trainer(viewer)
    assert not trainer.save_btn.isEnabled()  # nothing fine-tuned yet
    ckpt = fake_fine_tuned(trainer)
    assert trainer.save_btn.isEnabled()
    monkeypatch.setattr(
        trainer_worker, "ask_save_path", lambda *_: str(tmp_path / "out" / "my-model")
    )
    trainer.save_btn.click()
    dest = tmp_path / "out" / "my-model.pt"
    qtbot.waitUntil(lambda: dest.exists() and "saved" in trainer.status.text(), timeout=10_000)
    assert dest.read_bytes() == ckpt.read_bytes()
    assert not list(dest.parent.glob("*.tmp*")) and not list(dest.parent.glob(".*"))
    assert seen == [f"jcas-napari: model saved to {dest}"]
    seen.clear()
    trainer.save_model(str(root / "models" / "inside.pt"))
    assert not (root / "models").exists()
    assert len(seen) == 1 and "inside the dataset" in seen[0], seen
    seen.clear()
    monkeypatch.setattr(trainer_worker, "ask_save_path", lambda *_: "")  # cancelled dialog
    trainer.save_btn.click()
    assert seen == []


# ---------------------------------------------------------------------- item 7: messages


def test_a_file_that_is_not_a_checkpoint_gives_one_clean_line(viewer, qtbot, tmp_path, seen):
    add_small_data(viewer)
    trainer = make_trainer(viewer)
    trainer.form.model.value = "checkpoint file"
    text = tmp_path / "notes.txt"
    text.write_text("not a model\n")
    trainer.form.checkpoint.value = text
    trainer.start()
    assert len(seen) == 1 and "notes.txt" in seen[0] and "not a PyTorch checkpoint" in seen[0]
    assert trainer.start_btn.isEnabled() and trainer.runs.folders() == []
    # A zip archive passes the quick look; torch refuses it in the worker.
    seen.clear()
    archive = tmp_path / "arrays.npz"
    np.savez(archive, a=np.zeros(3))
    trainer.form.checkpoint.value = archive
    trainer.start()
    wait_idle(trainer, qtbot, timeout=60_000)
    qtbot.wait(100)
    assert len(seen) == 1, seen  # not napari's relay as well
    line = seen[0]
    assert line.startswith("jcas-napari: arrays.npz: ") and str(archive) in line, line
    assert "\n" not in line and "PytorchStreamReader" not in line, line
    assert trainer.status.text() == f"error: {line.removeprefix('jcas-napari: ')}"
    assert trainer.session.checkpoint is None and trainer.runs.folders() == []


def test_error_line_names_the_file_then_the_problem(tmp_path):
    from jcas_napari.core.checkpoint import CheckpointError
    from jcas_napari.napari.trainer_worker import error_line

    path = tmp_path / "model.pt"
    exc = CheckpointError(path, "unreadable or truncated checkpoint: the file is damaged")
    assert error_line(exc) == (
        f"model.pt: unreadable or truncated checkpoint: the file is damaged ({path})"
    )
    exc = CheckpointError(path, "checkpoint has 3 classes ['a', 'b', 'c'], the dataset has 4")
    assert error_line(exc).startswith("model.pt: checkpoint has 3 classes")
    assert error_line(ValueError("first line\nsecond line")) == "first line"


# ---------------------------------------------------------------------- screenshot


def test_screenshot_of_the_trainer_docked_mid_training(make_napari_viewer, qtbot, tmp_path):
    from jcas_napari.data.io import write_image

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1260, 860)  # inside the 1280x1024 xvfb screen
    viewer.open_sample("jcas-napari", "noisy-sequence")
    trainer = make_trainer(viewer)
    viewer.window.add_dock_widget(trainer, name="JCAS trainer", area="right")
    trainer.form.jcas.value = 6  # 2 steps per epoch on the sample: a loss curve
    steps = []
    trainer.session.progress.connect(lambda ev: ev.kind == "step" and steps.append(ev))
    trainer.start()
    qtbot.waitUntil(lambda: len(steps) >= 7, timeout=180_000)
    qtbot.wait(200)
    shot = trainer.grab().toImage()
    img = viewer.screenshot(canvas_only=False, flash=False)
    assert shot.height() > 200 and img[..., :3].std() > 10
    path = (DOCS if os.environ.get("JCAS_WRITE_DOCS") else tmp_path) / "trainer.png"
    write_image(path, np.ascontiguousarray(img[..., :3]))
    trainer.cancel()
    wait_idle(trainer, qtbot)


def test_cleaning_tells_the_user_which_part_changes_were_not_made(viewer, qtbot, seen, tmp_path):
    """A model that calls every wrist a clasper cleans in the GUI: no wrist is relabelled,
    and the status line and a notification say why (the same note as the CLI's)."""
    from jcas_napari.data.io import ClassInfo, open_dataset
    from jcas_napari.data.make import make_dataset
    from jcas_napari.napari.layers import labels_kwargs
    from jcas_napari.napari.names import FRAMES, USER_MASKS
    from tests.test_part_check import WRIST, cleaner_for, confused_model

    make_dataset(tmp_path / "ds", sequences=1, frames=6, size=(128, 160), noise="clean", seed=9)
    ds = open_dataset(tmp_path / "ds")
    images = np.stack([ds[i].image for i in range(len(ds))])
    masks = np.stack([ds[i].mask for i in range(len(ds))])
    viewer.add_image(images, name=FRAMES, rgb=True)
    viewer.add_labels(masks, **labels_kwargs(USER_MASKS, ClassInfo()))
    trainer = make_trainer(viewer)
    cleaner = cleaner_for(confused_model(ds))
    cleaner.source = trainer.session.checkpoint = "confused.pt"
    trainer.session.cleaner = cleaner
    trainer._trained_from = trainer.form.source()  # as if trained here from this choice
    trainer.clean()
    qtbot.waitUntil(
        lambda: "corrected" in viewer.layers and trainer.start_btn.isEnabled(), timeout=60_000
    )
    corrected = viewer.layers["corrected"].data
    assert (corrected[masks == WRIST] == WRIST).all()
    note = "no wrist -> clasper changes: it calls more of the parts drawn as wrist clasper"
    assert note in trainer.status.text()
    assert any(note in str(s) for s in seen)


def test_clean_with_this_model_uses_the_model_the_picker_shows(viewer, qtbot, seen, tmp_path):
    """Found by a new-user walkthrough: with a checkpoint file chosen and nothing trained,
    'Clean with this model' cleaned with the shipped model and said nothing."""
    from jcas_napari.napari.trainer import SHIPPED
    from jcas_napari.napari.trainer_form import CHECKPOINT_CHOICE

    add_small_data(viewer)
    trainer = make_trainer(viewer)
    broken = tmp_path / "trunc.pt"
    broken.write_bytes(SHIPPED.read_bytes()[:2000])
    trainer.form.model.value = CHECKPOINT_CHOICE
    trainer.form.checkpoint.value = broken
    trainer.clean()
    wait_idle(trainer, qtbot)
    assert "error" in trainer.status.text() and "trunc.pt" in trainer.status.text()
    assert "corrected" not in viewer.layers
    good = tmp_path / "mine.pt"
    good.write_bytes(SHIPPED.read_bytes())
    trainer.form.checkpoint.value = good
    trainer.clean()
    wait_idle(trainer, qtbot)
    assert trainer.session.checkpoint == str(good) and "corrected" in viewer.layers
    assert "mine.pt" in trainer.status.text()  # "cleaned 6 frames with mine.pt", or its note
    # The table's frame ids share their start: a narrow column cuts them at the left.
    from qtpy.QtCore import Qt

    first = trainer.table.item(0, 0)
    assert first.toolTip() == first.text() and "frame" in first.text()
    assert trainer.table.textElideMode() == Qt.ElideLeft and not trainer.table.wordWrap()
    # A fresh start chosen and nothing trained: no model to clean with, and it says so.
    trainer.form.model.value = "fresh: small"
    trainer.clean()
    assert "no model to clean with yet" in trainer.status.text()
    # A model trained here cleans while the picker shows what it started from.
    trainer.session.checkpoint, trainer.session.models = str(good), [(str(good), None)]
    trainer._trained_from = trainer.form.source()
    trainer.clean()
    wait_idle(trainer, qtbot)
    assert trainer.session.models == [(str(good), None)]  # kept: not the picker's model
    assert "no model" not in trainer.status.text()
