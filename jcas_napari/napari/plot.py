"""A matplotlib canvas for the widgets (Qt backend, created lazily)."""

from __future__ import annotations


def make_canvas(width: float, height: float):
    """A (FigureCanvasQTAgg, Figure) pair sized in inches."""
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=90, tight_layout=True)
    return FigureCanvasQTAgg(fig), fig


def loss_plot_widget():
    """A tiny live line plot painted with QPainter: a matplotlib redraw cost ~50 ms on the
    GUI thread during training (benchmarks/bench_gui.py), this costs well under 1 ms."""
    from qtpy.QtCore import QPointF
    from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
    from qtpy.QtWidgets import QWidget

    class LossPlot(QWidget):
        def __init__(self) -> None:
            super().__init__()
            self.values: list[float] = []
            self.setMinimumHeight(110)

        def set_values(self, values) -> None:
            self.values = list(values)
            self.update()

        def paintEvent(self, _event) -> None:  # noqa: N802 (Qt API)
            p = QPainter(self)
            p.fillRect(self.rect(), QColor(250, 250, 250))
            p.setPen(QColor(60, 60, 60))
            w, h = self.width(), self.height()
            p.drawText(6, 14, "training loss")
            if len(self.values) >= 2:
                lo, hi = min(self.values), max(self.values)
                span = (hi - lo) or 1.0
                n = len(self.values) - 1
                pts = [QPointF(8 + (w - 16) * i / n, h - 8 - (h - 30) * (v - lo) / span)
                       for i, v in enumerate(self.values)]  # fmt: skip
                p.setPen(QPen(QColor(31, 119, 180), 1.5))
                p.drawPolyline(QPolygonF(pts))
                p.setPen(QColor(90, 90, 90))
                p.drawText(w - 130, 14, f"{self.values[-1]:.3f} (min {lo:.3f})")
            p.end()

    return LossPlot()
