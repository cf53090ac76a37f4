"""A matplotlib canvas for the widgets (Qt backend, created lazily)."""

from __future__ import annotations


def make_canvas(width: float, height: float):
    """A (FigureCanvasQTAgg, Figure) pair sized in inches."""
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=90, tight_layout=True)
    return FigureCanvasQTAgg(fig), fig


def short_name(name: str, limit: int = 6) -> str:
    """A class name short enough for a tick label of a dock-sized heatmap."""
    return name if len(name) <= limit else name[: limit - 1] + "."


def draw_matrix(ax, t, labels, title: str, ylabel: bool = True) -> None:
    """A transition matrix sized for a dock: T[i, j] in each cell, short tick labels,
    the font shrinking with the number of classes so that the numbers never overlap."""
    import numpy as np

    t = np.asarray(t, float)
    k = len(t)
    size = 7 if k <= 4 else 6 if k <= 6 else 5
    ax.imshow(t, vmin=0, vmax=1, cmap="viridis")
    # Horizontal column labels of at most 5 characters fit a cell of a dock-sized panel;
    # rotated ones overlapped their neighbours.
    ax.set_xticks(range(k), [short_name(str(n), 5) for n in labels], fontsize=size)
    rows = [short_name(str(n)) for n in labels] if ylabel else [""] * k
    ax.set_yticks(range(k), rows, fontsize=size)
    ax.tick_params(length=2, pad=1)
    ax.set_xlabel("noisy", fontsize=size, labelpad=1)
    if ylabel:
        ax.set_ylabel("clean", fontsize=size, labelpad=1)
    ax.set_title(title, fontsize=size + 1, pad=3)
    if k <= 8:  # more cells than that: the colour alone, numbers would not fit
        for i in range(k):
            for j in range(k):
                ax.text(
                    j,
                    i,
                    f"{t[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=size,
                    color="white" if t[i, j] < 0.5 else "black",
                )


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
                pts = [
                    QPointF(8 + (w - 16) * i / n, h - 8 - (h - 30) * (v - lo) / span)
                    for i, v in enumerate(self.values)
                ]
                p.setPen(QPen(QColor(31, 119, 180), 1.5))
                p.drawPolyline(QPolygonF(pts))
                p.setPen(QColor(90, 90, 90))
                p.drawText(w - 130, 14, f"{self.values[-1]:.3f} (min {lo:.3f})")
            p.end()

    return LossPlot()
