"""Transition matrices dock widget: the T_C and T_A of the model in use.

During training the panels follow the estimate live. Once a model cleans (the trained
one, the shipped one or a checkpoint file) they show what it stores (the held-out T_C and
the learned T_C and T_A) and the T_C the cleaner's rule actually used (estimated on the
frames it cleaned), each labelled. No checkpoint is loaded here: the cleaning worker's
model (``Session.cleaner``) is read.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QCheckBox, QComboBox, QLabel, QScrollArea, QVBoxLayout, QWidget

from jcas_napari import ENDOVIS_PART_CLASSES
from jcas_napari.napari.docking import tab_with_siblings
from jcas_napari.napari.plot import draw_matrix, make_canvas
from jcas_napari.napari.session import session_for

VIEW_HEIGHT = 180  # px
USED = "used to clean these frames (estimated on them)"
ANCHOR = "held-out estimate at the end of training"
LEARNED = "learned by the model (its T_C layer)"
LIVE = "live estimate during training"
NO_TRUTH = "no true T_C is known for these layers (only synthetic flip noise records one)"


def matrices_of(ckpt: dict) -> dict[str, np.ndarray]:
    """The T matrices a checkpoint stores (``t_c``, ``t_a``, ``t_c_anchor``), as arrays."""
    return {k: np.asarray(ckpt[k], float) for k in ("t_c", "t_a", "t_c_anchor") if k in ckpt}


class MatricesWidget(QWidget):
    """Heatmaps of T_C (K x K) and T_A (2 x 2); where the true T is known (synthetic
    data: a layer's metadata ``true_t``), a toggle shows it beside them."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        QTimer.singleShot(0, lambda: tab_with_siblings(self))
        self.setMinimumHeight(VIEW_HEIGHT)  # docks share height evenly; the panels need this
        self.canvas, self.fig = make_canvas(3.6, 3.4)
        self.canvas.setMinimumSize(260, 240)
        self.canvas.setToolTip("T[i, j] = P(noisy class j | clean class i); rows sum to 1")
        self.which = QComboBox()
        self.which.setToolTip("Which T_C of the model in use to show")
        self.show_true = QCheckBox("show the true T_C")
        self.frames_note = ""
        self.note = QLabel("identity until a model is trained, loaded or used to clean")
        self.note.setWordWrap(True)
        self.note.setToolTip("Where the matrices shown come from")
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        inner = QWidget()
        column = QVBoxLayout(inner)
        for w in (self.which, self.canvas, self.show_true, self.note):
            column.addWidget(w)
        column.addStretch(1)  # the note stays under the panels in a tall dock
        scroll.setWidget(inner)
        QVBoxLayout(self).addWidget(scroll)
        self.t_c, self.t_a = np.eye(4), np.eye(2)
        self.options: dict[str, np.ndarray] = {}
        self.model_name = ""
        self._shown = 0  # counts the models shown
        self.session.progress.connect(self._on_event)
        self.session.model_ready.connect(self._on_model)
        self.session.cleaned.connect(self._on_cleaned)
        self.show_true.toggled.connect(lambda _: self.draw())
        self.which.currentTextChanged.connect(self._pick)
        self.viewer.layers.events.inserted.connect(self._truth_available)
        self.viewer.layers.events.removed.connect(self._truth_available)
        self._truth_available()
        self.draw()

    def true_t(self) -> np.ndarray | None:
        for layer in self.viewer.layers:
            t = layer.metadata.get("true_t") if hasattr(layer, "metadata") else None
            if t is not None:
                return np.asarray(t, float)
        return None

    def _truth_available(self, *_) -> None:
        known = self.true_t() is not None
        self.show_true.setEnabled(known)
        self.show_true.setToolTip(
            "Show the noise process that made these synthetic masks" if known else NO_TRUTH
        )
        if not known:
            self.show_true.setChecked(False)
        self.show_true.setText("show the true T_C" if known else "show the true T_C (unknown)")

    def class_names(self) -> list[str]:
        for layer in self.viewer.layers:
            names = layer.metadata.get("class_names") if hasattr(layer, "metadata") else None
            if names and len(names) == len(self.t_c):
                return list(names)
        names = list(ENDOVIS_PART_CLASSES[: len(self.t_c)])
        return names + [str(i) for i in range(len(names), len(self.t_c))]

    def set_options(self, options: dict[str, np.ndarray], t_a, model: str) -> None:
        """Offer the T_C matrices in ``options`` (label -> K x K) with T_A of ``model``."""
        self.options = {k: np.asarray(v, float) for k, v in options.items() if v is not None}
        self.t_a, self.model_name = np.asarray(t_a, float), model
        self.which.blockSignals(True)
        self.which.clear()
        self.which.addItems(list(self.options))
        self.which.blockSignals(False)
        self._pick(self.which.currentText())

    def _pick(self, label: str) -> None:
        if label in self.options:
            self.t_c = self.options[label]
            note = f"T_C {label}; T_A learned. Model: {self.model_name}"
            used = self.frames_note if label.startswith("used") else ""
            self.note.setText(f"{note}. {used}" if used else note)
        self.draw()

    def set_matrices(self, t_c: np.ndarray, t_a: np.ndarray) -> None:
        self.set_options({LIVE: t_c}, t_a, "the model in training")

    def _on_event(self, ev) -> None:
        if ev.kind == "epoch" or (ev.kind == "step" and ev.step % 5 == 0):
            self.set_matrices(ev.t_c, ev.t_a)

    def _on_model(self, path: str) -> None:
        """A new model: show its matrices if it is loaded already; otherwise they follow
        when it cleans (the trainer cleans right after training). Loading it here for the
        panels alone, in a second worker beside the trainer's, hung the whole-flow test
        inside torch.load; the GUI thread must not load it either."""
        self._shown += 1
        cleaner = self.session.cleaner
        if cleaner is not None and cleaner.source == path:
            self.show_checkpoint(matrices_of(cleaner.checkpoint), path)
        else:
            self.note.setText(f"model ready ({path}): its T_C and T_A show once it cleans")

    def show_checkpoint(self, mats: dict, name: str, used=None, by_band=None) -> None:
        """Show a checkpoint's T_C (held-out anchor and learned), and the one cleaning
        used when given, first: the panels then show the model actually in use.
        ``by_band`` maps a band's description to the T_C cleaning used there."""
        k = len(mats.get("t_c", np.eye(len(self.t_c))))
        options = {USED: used, **(by_band or {})}
        options.update({ANCHOR: mats.get("t_c_anchor"), LEARNED: mats.get("t_c")})
        if all(v is None for v in options.values()):
            options = {LEARNED: np.eye(k)}
        self.set_options(options, mats.get("t_a", np.eye(2)), name)

    def _on_cleaned(self, _results) -> None:
        cleaner = self.session.cleaner  # the one model that cleaned the frames in the GUI
        self._shown += 1
        if cleaner is None or getattr(cleaner, "checkpoint", None) is None:
            return
        ckpt = cleaner.checkpoint
        mats = matrices_of(ckpt)
        name = str(cleaner.source or "the model in use")
        by_band = None
        from jcas_napari.core.guards import frames_note  # loaded with the cleaner

        self.frames_note = frames_note(*getattr(cleaner, "t_frames", (0, False)))
        if getattr(cleaner, "t_bands", None) is not None:
            from jcas_napari.core.propose import band_names

            # USED (all pixels) sets the change cap; each band's T weighs its labels.
            by_band = {f"used {n}": t for n, t in zip(band_names(), cleaner.t_bands)}
        self.show_checkpoint(mats, name, used=np.asarray(cleaner.t_c, float), by_band=by_band)

    def draw(self) -> None:
        self.fig.clear()
        true = self.true_t() if self.show_true.isChecked() else None
        if true is None and self.show_true.isChecked():  # ticked, but no truth to show
            self.show_true.blockSignals(True)
            self.show_true.setChecked(False)
            self.show_true.blockSignals(False)
        names = self.class_names()
        grid = self.fig.add_gridspec(2, 2, height_ratios=(1.6, 1))
        first = self.fig.add_subplot(grid[0, :] if true is None else grid[0, 0])
        draw_matrix(first, self.t_c, names, "T_C (model)")
        if true is not None:
            draw_matrix(self.fig.add_subplot(grid[0, 1]), true, names, "true T_C", ylabel=False)
        draw_matrix(self.fig.add_subplot(grid[1, 0]), self.t_a, ["dissim.", "similar"], "T_A")
        self.canvas.draw_idle()
