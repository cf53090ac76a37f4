"""matplotlib drawing shared by the report and the napari widgets (no backend chosen here)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def draw_heatmap(ax, t: np.ndarray, labels: Sequence[str], title: str) -> None:
    """Transition matrix T[i, j] with its values in the cells; rows clean, columns noisy."""
    ax.clear()
    ax.imshow(t, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("noisy", fontsize=7)
    ax.set_ylabel("clean", fontsize=7)
    ax.set_title(title, fontsize=8)
    for i in range(t.shape[0]):
        for j in range(t.shape[1]):
            ax.text(
                j,
                i,
                f"{t[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if t[i, j] < 0.5 else "black",
            )
