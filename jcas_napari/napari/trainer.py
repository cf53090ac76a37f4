"""JCAS trainer dock widget: fine-tune in a background worker, then clean.

The worker runs the same core pipeline as ``jcas run`` (core.pipeline.fit, clean_models).
Layers and widgets are touched only in the worker's slots, on the main thread. Cancel sets
a flag that the training loop checks every step; the previous model stays in use.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

import numpy as np
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)  # fmt: skip

from jcas_napari.assets import shipped_model
from jcas_napari.napari import runtime
from jcas_napari.napari.layers import (
    RESULT_LAYERS,
    as_frames,
    class_info_of,
    default_masks,
    result_layers,
)
from jcas_napari.napari.plot import loss_plot_widget
from jcas_napari.napari.provenance import ResultsSource
from jcas_napari.napari.session import session_for

SHIPPED = shipped_model()
MODEL_CHOICES = ("fine-tune shipped model", "fresh: small", "fresh: deeplab-r101",
                 "checkpoint file")  # fmt: skip


class TrainerWidget(QWidget):
    """Pick layers, model, device and epochs; Start, Cancel, Clean with this model."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.worker = None
        self._pending_layers: list = []  # result layers still to add, one per turn
        self._run_id = 0  # counts training and cleaning runs; the newest one owns the GUI
        self._stop = threading.Event()
        self._losses: list[float] = []
        self._results: list = []
        self._gen = None
        self._source: ResultsSource | None = None  # the layers the current cleaning reads
        self._chosen_masks = ""  # masks the user picked in the combo (not a default)
        self._run_root = Path(tempfile.mkdtemp(prefix="jcas_runs_"))

        self.image_combo, self.mask_combo = QComboBox(), QComboBox()
        self.model_combo = QComboBox()
        self.model_combo.addItems(MODEL_CHOICES)
        self.path_edit = QLineEdit()
        self.path_edit.setPlaceholderText("checkpoint .pt (for 'checkpoint file')")
        self.device_combo = QComboBox()
        self.device_combo.addItems(runtime.available_devices())
        self.device_note = QLabel("")
        self.warmup, self.jcas = QSpinBox(), QSpinBox()
        for box, val in ((self.warmup, 0), (self.jcas, 2)):
            box.setRange(0, 1000)
            box.setValue(val)
        self.start_btn, self.cancel_btn = QPushButton("Start"), QPushButton("Cancel")
        self.clean_btn = QPushButton("Clean with this model")
        self.cancel_btn.setEnabled(False)
        self.progress = QProgressBar()
        self.status = QLabel("idle")
        self.status.setWordWrap(True)
        self.canvas = loss_plot_widget()
        self.table = QTableWidget(0, 3)
        self.table.setMinimumHeight(120)
        self.table.setHorizontalHeaderLabels(["frame", "noise score", "changed %"])
        self.table.cellClicked.connect(self._jump_to_row)

        self._lay_out()
        self.start_btn.clicked.connect(self.start)
        self.cancel_btn.clicked.connect(self.cancel)
        self.clean_btn.clicked.connect(self.clean)
        self.device_combo.currentTextChanged.connect(self._device_changed)
        self.mask_combo.activated.connect(self._masks_chosen)  # user picks only
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self._refresh_layers()
        self._device_changed(self.device_combo.currentText())
        runtime.preload_training_modules()

    def _lay_out(self) -> None:
        """The form of inputs, the buttons, the progress and the table of frames."""
        form = QFormLayout()
        for label, widget in (("frames", self.image_combo), ("noisy masks", self.mask_combo),
                              ("model", self.model_combo), ("", self.path_edit),
                              ("device", self.device_combo), ("", self.device_note),
                              ("warm-up epochs", self.warmup), ("JCAS epochs", self.jcas)):
            form.addRow(label, widget)  # fmt: skip
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_btn)
        buttons.addWidget(self.cancel_btn)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        for w in (self.progress, self.status, self.canvas, self.clean_btn,
                  QLabel("Frames, worst first (click to go there):"), self.table):
            layout.addWidget(w)  # fmt: skip

    # ------------------------------------------------------------------ inputs

    def _refresh_layers(self, *_) -> None:
        from napari.layers import Image, Labels

        for combo, kind in ((self.image_combo, Image), (self.mask_combo, Labels)):
            current = combo.currentText()
            layers = [lay for lay in self.viewer.layers
                      if isinstance(lay, kind) and lay.name not in RESULT_LAYERS]  # fmt: skip
            combo.clear()
            combo.addItems([lay.name for lay in layers])
            if kind is Labels:  # never the truth by default: then no default at all
                current = default_masks(layers, current, self._chosen_masks) or ""
                combo.setCurrentIndex(combo.findText(current))
            else:
                combo.setCurrentText(current)  # kept if still there, else the first

    def _masks_chosen(self, index: int) -> None:
        self._chosen_masks = self.mask_combo.itemText(index)

    def _device_changed(self, device: str) -> None:
        cpu = device == "cpu" or (device == "auto"
                                  and runtime.available_devices() == ["auto", "cpu"])
        self.device_note.setText("Training on the CPU is slow: keep the epochs low."
                                 if cpu else "")  # fmt: skip

    def _selected_layers(self) -> tuple:
        """The frames and masks layers chosen in the combos (ValueError if one is not)."""
        names = (self.image_combo.currentText(), self.mask_combo.currentText())
        for what, name in zip(("frames", "noisy masks"), names):
            if not name or name not in self.viewer.layers:
                raise ValueError(f"choose the {what} layer")
        return self.viewer.layers[names[0]], self.viewer.layers[names[1]]

    def dataset(self):
        """The selected layers as an in-memory dataset (all frames one sequence)."""
        from jcas_napari.data.io import ArrayDataset

        image, masks = self._selected_layers()
        frames = as_frames(image.data)
        m = np.asarray(masks.data)
        return ArrayDataset(frames, m[None] if m.ndim == 2 else m, class_info_of(masks),
                            name=masks.name)  # fmt: skip

    def config_and_init(self):
        from jcas_napari.core.config import load_config

        choice = self.model_combo.currentText()
        if choice == "fine-tune shipped model":
            return load_config("small"), str(SHIPPED)
        if choice == "checkpoint file":
            path = self.path_edit.text().strip()
            if not path or not Path(path).is_file():
                raise ValueError(f"checkpoint file not found: {path!r}")
            return load_config("small"), path
        return load_config(choice.split(": ")[1]), None

    # ------------------------------------------------------------------ training

    def start(self) -> None:
        """Start training in a worker thread."""
        from napari.qt.threading import create_worker
        from napari.utils.notifications import show_error

        from jcas_napari.core.memory import release_freed_memory
        from jcas_napari.core.pipeline import fit

        try:
            import torch

            # Leave a core to the GUI thread: with every core busy in the worker, the event
            # loop stalled (benchmarks/bench_gui.py).
            torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
            ds = self.dataset()
            cfg, init = self.config_and_init()
            cfg.train.epochs_warmup, cfg.train.epochs_jcas = self.warmup.value(), self.jcas.value()
            run_dir = Path(tempfile.mkdtemp(prefix="run_", dir=self._run_root))
            self._stop.clear()
            runtime.freeze_long_lived()
            # The same pipeline as `jcas run`: folds by sequence where the data allows it.
            gen = fit(ds, cfg, run_dir, device=self.device_combo.currentText(),
                      init_checkpoint=init, should_stop=self._stop.is_set)  # fmt: skip
        except (ValueError, KeyError) as exc:
            show_error(f"jcas-napari: {exc}")
            return

        def run():
            try:
                return (yield from gen)
            finally:
                release_freed_memory()  # here, off the GUI thread, once gen has ended

        self._gen = gen
        self._losses = []
        self.worker = create_worker(run, _progress={"desc": "JCAS training"})
        self.worker.yielded.connect(self._on_event)
        self.worker.returned.connect(self._on_trained)
        self.worker.errored.connect(self._on_error)
        # The slot gets a run number, not the worker: a lambda holding the worker, connected
        # to the worker's own signal, kept every finished worker (and its progress bar)
        # alive; the 20 start/cancel test found it.
        self._run_id += 1
        run_id = self._run_id
        self.worker.finished.connect(lambda: self._on_finished(run_id))
        self._set_running(True)
        self.status.setText("training…")
        self.worker.start()

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

    def _on_event(self, ev) -> None:
        if ev.kind == "message":
            from napari.utils.notifications import show_warning

            show_warning(f"jcas-napari: {ev.val['message']}")
            return
        self.session.progress.emit(ev)
        self.progress.setMaximum(ev.steps_total)
        self.progress.setValue(ev.step)
        if ev.kind == "step":
            self._losses.append(ev.losses["total"])
            self.status.setText(
                f"stage {ev.stage}, epoch {ev.epoch + 1}/{ev.epochs_total}, step "
                f"{ev.step}/{ev.steps_total}, loss {ev.losses['total']:.3f}, "
                f"{ev.images_per_s:.1f} img/s, ETA {ev.eta_s:.0f} s")  # fmt: skip
            self.canvas.set_values(self._losses)

    def _on_trained(self, result) -> None:
        if result is None or result.cancelled or not result.models:
            self.status.setText("cancelled; the previous model is kept")
            return
        self.session.models = [(str(c), idx) for c, idx in result.models]
        self.session.checkpoint = str(result.models[0][0])
        self.session.model_ready.emit(self.session.checkpoint)
        self.status.setText(f"trained: {self.session.checkpoint}")
        self.clean()

    def _on_error(self, exc) -> None:
        from napari.utils.notifications import show_error

        show_error(f"jcas-napari: {exc}")
        self.status.setText(f"error: {exc}")

    def _on_finished(self, run_id: int) -> None:
        if self._gen is not None:
            self._gen.close()  # frees the model and optimiser however the run ended
            self._gen = None
        if run_id != self._run_id:  # cleaning already took over (and thaws when done)
            return
        self._set_running(False)
        runtime.thaw()
        if self._stop.is_set():
            self.status.setText("cancelled; the previous model is kept")

    # ------------------------------------------------------------------ cleaning

    def clean(self) -> None:
        """Clean the selected frames with the current model (shipped one if none yet)."""
        from napari.qt.threading import create_worker
        from napari.utils.notifications import show_error

        from jcas_napari.core.pipeline import clean_models

        try:
            image, masks = self._selected_layers()
            ds = self.dataset()
        except ValueError as exc:  # no layer chosen, or frames and masks that do not fit
            show_error(f"jcas-napari: {exc}")
            self.status.setText(f"error: {exc}")
            return
        # What the results will belong to, read here on the GUI thread before the worker.
        self._source = ResultsSource.of(image, masks)
        if self.session.checkpoint is None:
            self.session.checkpoint = str(SHIPPED)
        self._results = []
        self._run_id += 1
        session = self.session
        runtime.freeze_long_lived()
        self._notes: list[str] = []
        notes = self._notes
        models = session.models or [(session.checkpoint, None)]

        def run():
            # Loading the model(s) happens here, in the worker, not on the GUI thread.
            one = [(session.get_cleaner(), None)] if len(models) == 1 else models
            yield from clean_models(ds, one, notes=notes)

        self.progress.setMaximum(len(ds))
        self.progress.setValue(0)
        self.worker = create_worker(run, _progress={"total": len(ds), "desc": "JCAS cleaning"})
        self.worker.yielded.connect(self._on_cleaned_frame)
        self.worker.finished.connect(self._on_cleaned)
        self.worker.errored.connect(self._on_error)
        self._set_running(True)
        self.status.setText("cleaning…")
        self.worker.start()

    def _on_cleaned_frame(self, result) -> None:
        self._results.append(result)
        self.progress.setValue(len(self._results))

    def _on_cleaned(self) -> None:
        self._set_running(False)
        results = sorted(self._results, key=lambda r: r.index)
        problem = (self._source.problem(self.viewer, full=False) if self._source
                   else "the cleaned layers are unknown")  # fmt: skip
        if not results or problem:  # the cleaned layers went away meanwhile: drop them
            runtime.thaw()
            self.status.setText(f"results dropped: {problem}" if results else "idle")
            return
        self.show_results(results, class_info_of(self._source.mask_layer))
        self.status.setText(f"cleaned {len(results)} frames with {self.session.checkpoint}")
        for note in self._notes:
            from napari.utils.notifications import show_warning

            show_warning(f"jcas-napari: {note}")
            self.status.setText(note)

    def show_results(self, results, classes) -> None:
        """Add or refresh the corrected, changes and confidence layers and the score table."""
        self.session.set_results(results, self._source)
        layers = result_layers(results, classes)
        # Show the proposal over the frames; the given masks stay one click away.
        masks = self._source.mask_layer if self._source is not None else None
        if masks is not None:
            masks.visible = False
        # One layer per event-loop turn, each scheduled when the previous one is in: napari
        # takes ~100-200 ms to create any layer here, and three zero-delay timers queued
        # together ran back to back as one 500 ms freeze (benchmarks/bench_gui.py).
        self._pending_layers = list(layers.items())
        QTimer.singleShot(0, self._put_next_layer)
        self.table.setRowCount(0)
        for r in sorted(results, key=lambda r: -r.noise_score):
            row = self.table.rowCount()
            self.table.insertRow(row)
            for col, text in enumerate((str(r.index), f"{r.noise_score:.3f}",
                                        f"{100 * r.changed_fraction:.1f}")):  # fmt: skip
                item = QTableWidgetItem(text)
                item.setFlags(item.flags() & ~Qt.ItemIsEditable)
                self.table.setItem(row, col, item)
        self.session.cleaned.emit(results)

    def _put_next_layer(self) -> None:
        if self._source is None or self._source.problem(self.viewer, full=False):
            self._pending_layers.clear()  # the layers (or the viewer) went away meanwhile
        if self._pending_layers:
            name, (data, kwargs) = self._pending_layers.pop(0)
            self._put_layer(name, data, kwargs)
        if self._pending_layers:
            # A short delay lets the canvas paint and input events run in between.
            QTimer.singleShot(30, self._put_next_layer)
        elif not self.cancel_btn.isEnabled():  # no newer run has started meanwhile
            runtime.thaw()  # the run is over once its results are shown

    def _put_layer(self, name: str, data, kwargs: dict) -> None:
        if name in self.viewer.layers:
            self.viewer.layers[name].data = data
        elif name == "confidence":
            self.viewer.add_image(data, **kwargs)
        else:
            self.viewer.add_labels(data, **kwargs)
            if name == "changes":
                self.viewer.layers[name].contour = 2  # outlines keep the corrections visible

    def _jump_to_row(self, row: int, _col: int) -> None:
        frame = int(self.table.item(row, 0).text())
        self.viewer.dims.set_current_step(0, frame)
