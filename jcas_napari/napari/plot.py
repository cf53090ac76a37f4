"""A matplotlib canvas for the widgets (Qt backend, created lazily)."""

from __future__ import annotations


def make_canvas(width: float, height: float):
    """A (FigureCanvasQTAgg, Figure) pair sized in inches."""
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=90, tight_layout=True)
    return FigureCanvasQTAgg(fig), fig
