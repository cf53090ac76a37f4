"""JCAS trainer dock widget: fine-tune in a background worker, then clean.

The parts: ``trainer_form`` (the magicgui inputs), ``trainer_worker`` (run folders and
the generators the workers run), ``results_view`` (the result layers and the table).
This module wires them: buttons, worker signals and the slots that update the screen.

The worker runs the same core pipeline as ``jcas run`` (core.pipeline.fit, clean_models).
Layers and widgets are touched only in the worker's slots, on the main thread. Cancel sets
a flag that the training loop checks every step; the previous model stays in use.
"""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path

import numpy as np
from qtpy.QtCore import QEvent, QTimer
from qtpy.QtWidgets import (
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from jcas_napari.assets import shipped_model
from jcas_napari.napari import runtime
from jcas_napari.napari import trainer_worker as work
from jcas_napari.napari.layers import as_frames, class_info_of
from jcas_napari.napari.names import CLEAN_BUTTON
from jcas_napari.napari.plot import loss_plot_widget
from jcas_napari.napari.provenance import ResultsSource
from jcas_napari.napari.results_view import ResultsView
from jcas_napari.napari.session import session_for
from jcas_napari.napari.trainer_form import TIPS, TrainerForm, column_of, scrolling_column

SHIPPED = shipped_model()
PRELOAD_POLL_MS = 100


class TrainerWidget(QWidget):
    """Pick layers, model, device and epochs; Start, Cancel, Clean, Save model."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.worker = None
        self.save_worker = None
        self._run_id = 0  # counts training and cleaning runs; the newest one owns the GUI
        self._stop = threading.Event()
        self._losses: list[float] = []
        self._results: list = []
        self._notes: list[str] = []
        self._gen = None
        # The model picker's (choice, file) when the current model's training started.
        self._starting_from = self._trained_from = None
        self._source: ResultsSource | None = None  # the layers the current cleaning reads
        self.runs = work.RunFolders()
        self.form = TrainerForm(napari_viewer)
        # The Qt widgets under their former names (tests and benchmarks drive them).
        self.image_combo, self.mask_combo = self.form.frames.native, self.form.masks.native
        self.warmup, self.jcas = self.form.warmup.native, self.form.jcas.native
        self._make_controls()
        self._lay_out()
        self._connect()
        self.refresh_layers()
        runtime.start_preload()  # torch and the training modules, in a plain thread
        self._preload_timer = QTimer(self)
        self._preload_timer.setInterval(PRELOAD_POLL_MS)
        self._preload_timer.timeout.connect(self._check_preload)
        self._preload_timer.start()
        self._check_preload()

    def _make_controls(self) -> None:
        self.start_btn, self.cancel_btn = QPushButton("Start"), QPushButton("Cancel")
        self.clean_btn, self.save_btn = QPushButton(CLEAN_BUTTON), QPushButton("Save model…")
        for name in ("start", "cancel", "clean", "save"):
            getattr(self, f"{name}_btn").setToolTip(TIPS[name])
        self.cancel_btn.setEnabled(False)
        self.save_btn.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setToolTip("Training steps, then cleaned frames.")
        self.progress.setFormat("%v / %m")
        self.status = QLabel("idle")
        self.status.setWordWrap(True)
        self.canvas = loss_plot_widget()
        self.canvas.setMinimumHeight(80)
        self.canvas.setToolTip("Training loss per step.")
        self.results = ResultsView(self.viewer, self.session)
        self.results.on_layers_done = self._layers_done
        self.table = self.results

    def _lay_out(self) -> None:
        """Form, the model buttons, loss plot and table scroll; Start, Cancel, progress and
        status stay in view under them, so that a short dock (a laptop screen with every
        dock open) never hides them."""
        models = (self.clean_btn, self.save_btn)
        parts = (self.form.native, models, self.canvas, self.table)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scrolling_column(parts), 1)
        bar = column_of(((self.start_btn, self.cancel_btn), self.progress, self.status))
        margins = bar.layout().contentsMargins()
        bar.layout().setContentsMargins(margins.left(), 2, margins.right(), 2)
        outer.addWidget(bar)

    def _connect(self) -> None:
        self.start_btn.clicked.connect(self.start)
        self.cancel_btn.clicked.connect(self.cancel)
        self.clean_btn.clicked.connect(self.clean)
        self.save_btn.clicked.connect(self._save_clicked)
        events = self.viewer.layers.events
        for event in (events.inserted, events.removed, events.moved, events.reordered):
            event.connect(self.refresh_layers)
        events.inserted.connect(self._watch_name)
        for layer in self.viewer.layers:
            layer.events.name.connect(self.refresh_layers)
        # Closing the viewer destroys its docked widgets; an undocked one goes with Python's
        # collection or exit (RunFolders' finalizer).
        self.destroyed.connect(partial(work.remove_tree, self.runs.root))
        stop = self._stop
        self.destroyed.connect(lambda *_: stop.set())

    # ------------------------------------------------------------------ inputs

    def refresh_layers(self, *_) -> None:
        """Re-read the layer pickers (the layer list or a layer name changed)."""
        self.form.refresh_layers()

    def _watch_name(self, event) -> None:
        event.value.events.name.connect(self.refresh_layers)

    def _check_preload(self) -> None:
        devices = runtime.preload_devices()
        if devices is None:
            if self.status.text() == "idle":
                self.status.setText("idle (loading PyTorch in the background…)")
            return
        self._preload_timer.stop()
        self.form.set_devices(devices)
        if self.status.text().startswith("idle"):
            self.status.setText("idle")

    def dataset(self):
        """The selected layers as an in-memory dataset (all frames one sequence)."""
        from jcas_napari.data.io import ArrayDataset

        image, masks = self.form.selected_layers()
        frames = as_frames(image.data)
        m = np.asarray(masks.data)
        return ArrayDataset(
            frames, m[None] if m.ndim == 2 else m, class_info_of(masks), name=masks.name
        )

    def _report(self, exc: BaseException | str) -> None:
        """One notification per error, and the same line in the status."""
        line = exc if isinstance(exc, str) else work.error_line(exc)
        runtime.notify("error", line)
        self.status.setText(f"error: {line}")

    def _new_worker(self, func, desc: str, total: int = 0):
        """A napari worker with a progress bar; its errors come to ``_report`` only
        (napari's own relay would add a second notification with a traceback)."""
        from napari.qt.threading import create_worker

        progress = {"desc": desc, "total": total}
        return create_worker(func, _progress=progress, _ignore_errors=True)

    # ------------------------------------------------------------------ training

    def start(self) -> None:
        """Start training in a worker thread."""
        try:
            ds = self.dataset()
            cfg, init = self.form.config_and_init(SHIPPED)
        except (ValueError, KeyError) as exc:
            self._report(exc)
            return
        run_dir = self.runs.new()
        self._starting_from = self.form.source()
        self._stop.clear()
        runtime.freeze_long_lived()
        gen = work.training_run(
            ds, cfg, run_dir, str(self.form.device.value), init, self._stop.is_set
        )

        def run():
            return (yield from gen)

        self._gen = gen
        self._losses = []
        self.worker = self._new_worker(run, "JCAS training")
        self.worker.yielded.connect(self._on_event)
        self.worker.returned.connect(self._on_trained)
        self.worker.errored.connect(self._report)
        # The slot gets a run number, not the worker: a lambda holding the worker, connected
        # to the worker's own signal, kept every finished worker (and its progress bar)
        # alive; the 20 start/cancel test found it.
        self._run_id += 1
        self.worker.finished.connect(partial(self._on_finished, self._run_id))
        self._set_running(True)
        self.status.setText("training…")
        runtime.start_worker(self.worker)

    def cancel(self) -> None:
        """Stop at the next step; the previous model stays.

        Only the flag is set: the training loop sees it within one step and returns, so the
        generator ends cleanly and frees its model (``worker.quit()`` would leave it
        suspended, holding the model, at its last ``yield``)."""
        self._stop.set()
        self.status.setText("cancelling…")

    def _set_running(self, running: bool) -> None:
        self.start_btn.setEnabled(not running)
        self.clean_btn.setEnabled(not running)
        self.cancel_btn.setEnabled(running)
        self.save_btn.setEnabled(not running and self._fine_tuned() is not None)

    def _fine_tuned(self) -> str | None:
        """The checkpoint of the model trained here (None: none, or the shipped one)."""
        ckpt = self.session.checkpoint
        return ckpt if ckpt and ckpt != str(SHIPPED) else None

    def _on_event(self, ev) -> None:
        if ev.kind == "message":
            runtime.notify("warning", ev.val["message"])
            return
        self.session.progress.emit(ev)
        self.progress.setMaximum(ev.steps_total)
        self.progress.setValue(ev.step)
        desc = f"JCAS training, stage {ev.stage}, epoch {ev.epoch + 1}/{ev.epochs_total}"
        work.set_progress(getattr(self.worker, "pbar", None), ev.step, ev.steps_total, desc)
        if ev.kind == "step":
            self._losses.append(ev.losses["total"])
            self.status.setText(
                f"stage {ev.stage}, epoch {ev.epoch + 1}/{ev.epochs_total}, step "
                f"{ev.step}/{ev.steps_total}, loss {ev.losses['total']:.3f}, "
                f"{ev.images_per_s:.1f} img/s, ETA {ev.eta_s:.0f} s"
            )
            self.canvas.set_values(self._losses)

    def _on_trained(self, result) -> None:
        if result is None or result.cancelled or not result.models:
            self.status.setText("cancelled; the previous model is kept")
            return
        self.session.models = [(str(c), idx) for c, idx in result.models]
        self.session.checkpoint = str(result.models[0][0])
        self._trained_from = self._starting_from
        self.session.model_ready.emit(self.session.checkpoint)
        self.status.setText(f"trained: {self.session.checkpoint}")
        self.clean()

    def _on_finished(self, run_id: int) -> None:
        if self._gen is not None:
            self._gen.close()  # frees the model and optimiser however the run ended
            self._gen = None
        # Only the model in use keeps its folder: cancelled, failed and replaced runs go.
        self.runs.keep_only([c for c, _ in self.session.models] + [self.session.checkpoint])
        if run_id != self._run_id:  # cleaning already took over (and thaws when done)
            return
        self._set_running(False)
        runtime.thaw()
        if self._stop.is_set():
            self.status.setText("cancelled; the previous model is kept")

    # ------------------------------------------------------------------ cleaning

    def clean(self) -> None:
        """Clean the selected frames with the current model (shipped one if none yet)."""
        try:
            image, masks = self.form.selected_layers()
            ds = self.dataset()
            # The model trained here while the picker shows what it started from; else
            # the one the picker shows (the shipped model or the chosen file).
            if self.session.checkpoint is None or self.form.source() != self._trained_from:
                self.session.checkpoint, self.session.models = self.form.model_to_clean(SHIPPED), []
        except ValueError as exc:  # no layer or model chosen, or frames and masks that do not fit
            self._report(exc)
            return
        # What the results will belong to, read here on the GUI thread before the worker.
        self._source = ResultsSource.of(image, masks)
        self._results = []
        self._notes = []
        self._run_id += 1
        runtime.freeze_long_lived()
        self.progress.setMaximum(len(ds))
        self.progress.setValue(0)
        run = partial(work.cleaning_run, ds, self.session, self._notes)
        self.worker = self._new_worker(run, "JCAS cleaning", total=len(ds))
        self.worker.yielded.connect(self._on_cleaned_frame)
        self.worker.finished.connect(self._on_cleaned)
        self.worker.errored.connect(self._report)
        self._set_running(True)
        self.status.setText("cleaning…")
        runtime.start_worker(self.worker)

    def _on_cleaned_frame(self, result) -> None:
        self._results.append(result)
        self.progress.setValue(len(self._results))

    def _on_cleaned(self) -> None:
        self._set_running(False)
        results = sorted(self._results, key=lambda r: r.index)
        problem = (
            self._source.problem(self.viewer, full=False)
            if self._source
            else "the cleaned layers are unknown"
        )
        if not results or problem:  # the cleaned layers went away meanwhile: drop them
            runtime.thaw()
            if results:
                self.status.setText(f"results dropped: {problem}")
            elif not self.status.text().startswith("error"):
                self.status.setText("idle")
            return
        self.show_results(results, class_info_of(self._source.mask_layer))
        # Only a model trained here has fold models; the picker's model is one file.
        used = (
            "the model trained here" if self.session.models else Path(self.session.checkpoint).name
        )
        self.status.setText(f"cleaned {len(results)} frames with {used}")
        for note in self._notes:
            runtime.notify("warning", note)
            self.status.setText(note)

    def show_results(self, results, classes) -> None:
        """Add or refresh the corrected, changes and confidence layers and the score table."""
        self.session.set_results(results, self._source)
        # Show the proposal over the frames; the given masks stay one click away.
        masks = self._source.mask_layer if self._source is not None else None
        if masks is not None:
            masks.visible = False
        self.results.display(results, classes, masks)
        self.session.cleaned.emit(results)

    def _layers_done(self) -> None:
        if not self.cancel_btn.isEnabled():  # no newer run has started meanwhile
            runtime.thaw()  # the run is over once its results are shown

    @property
    def _pending_layers(self) -> list:
        return self.results.pending

    def _jump_to_row(self, row: int, col: int = 0) -> None:
        self.results.jump_to_row(row, col)

    # ------------------------------------------------------------------ the model file

    def _save_clicked(self) -> None:
        self.save_model()

    def save_model(self, path: str | None = None) -> None:
        """Copy the fine-tuned checkpoint to ``path`` (asked for if None), atomically, in
        a worker; a path inside a dataset that is open is refused."""
        source = self._fine_tuned()
        if source is None:
            self._report("no fine-tuned model yet: train one first (Start)")
            return
        path = path if path is not None else work.ask_save_path(self, self.viewer.layers)
        if not path:
            return
        try:
            dest = work.check_model_destination(path, work.dataset_roots(self.viewer.layers))
        except ValueError as exc:
            self._report(exc)
            return
        self.save_worker = self._new_worker(
            partial(work.copy_checkpoint, source, dest), "Saving the model"
        )
        self.save_worker.returned.connect(self._on_saved)
        self.save_worker.errored.connect(self._report)
        self.status.setText(f"saving the model to {dest}…")
        runtime.start_worker(self.save_worker)

    def _on_saved(self, dest) -> None:
        self.status.setText(f"model saved to {dest}")
        runtime.notify("info", f"model saved to {dest}")

    # ------------------------------------------------------------------ closing

    def event(self, ev) -> bool:
        """Removed from its dock (napari's close button): keep only the model in use,
        which the review and the inspector of this viewer may still load."""
        if ev.type() == QEvent.ParentChange and self.parent() is None and hasattr(self, "runs"):
            self.runs.keep_only([c for c, _ in self.session.models] + [self.session.checkpoint])
        return super().event(ev)

    def closeEvent(self, ev) -> None:  # noqa: N802 (Qt API)
        """Closed: stop a run and delete the run folders."""
        self._stop.set()
        self.runs.remove_all()
        super().closeEvent(ev)
