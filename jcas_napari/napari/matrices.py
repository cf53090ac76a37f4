"""Transition matrices dock widget: T_C and T_A heatmaps, live during training."""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QCheckBox, QLabel, QVBoxLayout, QWidget

from jcas_napari.napari.plot import make_canvas
from jcas_napari.napari.session import session_for
from jcas_napari.plots import draw_heatmap

DEFAULT_NAMES = ("background", "shaft", "wrist", "clasper")


class MatricesWidget(QWidget):
    """Heatmaps of the estimated T_C (K x K) and T_A (2 x 2); where the true T is known
    (synthetic data: a layer's metadata ``true_t``), a toggle shows it beside them."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.canvas, self.fig = make_canvas(4.2, 2.2)
        self.canvas.setMinimumHeight(220)
        self.show_true = QCheckBox("show the true T_C (synthetic data)")
        self.note = QLabel("T[i, j] = P(noisy j | clean i); identity until stage 2 starts.")
        self.note.setWordWrap(True)
        layout = QVBoxLayout(self)
        for w in (self.canvas, self.show_true, self.note):
            layout.addWidget(w)
        self.t_c, self.t_a = np.eye(4), np.eye(2)
        self.session.progress.connect(self._on_event)
        self.session.model_ready.connect(self._on_model)
        self.show_true.toggled.connect(lambda _: self.draw())
        self.draw()

    def true_t(self) -> np.ndarray | None:
        for layer in self.viewer.layers:
            t = layer.metadata.get("true_t") if hasattr(layer, "metadata") else None
            if t is not None:
                return np.asarray(t, float)
        return None

    def class_names(self) -> list[str]:
        for layer in self.viewer.layers:
            names = layer.metadata.get("class_names") if hasattr(layer, "metadata") else None
            if names and len(names) == len(self.t_c):
                return list(names)
        return list(DEFAULT_NAMES[: len(self.t_c)]) + [
            str(i) for i in range(len(DEFAULT_NAMES), len(self.t_c))]  # fmt: skip

    def set_matrices(self, t_c: np.ndarray, t_a: np.ndarray) -> None:
        self.t_c, self.t_a = np.asarray(t_c, float), np.asarray(t_a, float)
        self.draw()

    def _on_event(self, ev) -> None:
        if ev.kind == "epoch" or (ev.kind == "step" and ev.step % 5 == 0):
            self.set_matrices(ev.t_c, ev.t_a)

    def _on_model(self, path: str) -> None:
        from jcas_napari.core.checkpoint import load_checkpoint

        ckpt = load_checkpoint(path)
        self.set_matrices(ckpt["t_c"].numpy(), ckpt["t_a"].numpy())

    def draw(self) -> None:
        self.fig.clear()
        true = self.true_t() if self.show_true.isChecked() else None
        n = 3 if true is not None else 2
        names = self.class_names()
        draw_heatmap(self.fig.add_subplot(1, n, 1), self.t_c, names, "estimated T_C")
        if true is not None:
            draw_heatmap(self.fig.add_subplot(1, n, 2), true, names, "true T_C")
        draw_heatmap(self.fig.add_subplot(1, n, n), self.t_a, ["dissim.", "similar"], "T_A")
        self.canvas.draw_idle()
