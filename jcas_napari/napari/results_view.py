"""The trainer's results on screen: the result layers and the table of frames.

Everything here runs on the GUI thread, in slots. Layers are added one per event-loop
turn: napari takes ~100-200 ms to create any layer under software OpenGL, and three
zero-delay timers queued together ran back to back as one 500 ms freeze
(benchmarks/bench_gui.py).
"""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from jcas_napari.napari.layers import result_layers
from jcas_napari.napari.names import CHANGES, CONFIDENCE, frame_ids

LAYER_GAP_MS = 30  # lets the canvas paint and input events run between two new layers


class ResultsView(QTableWidget):
    """Frames ranked by noise score (click a row to go to its frame); adds the layers."""

    def __init__(self, viewer, session) -> None:
        super().__init__(0, 3)
        self.viewer = viewer
        self.session = session  # its ``source``: the layers the results shown belong to
        self.pending: list = []  # result layers still to add, one per turn
        self.on_layers_done: Callable[[], None] | None = None
        self.setHorizontalHeaderLabels(["frame", "noise score", "changed %"])
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.Stretch)  # the frame ids get the room
        # Ids share their start (seq_02/...): cut a long one at the left, keep the frame.
        self.setTextElideMode(Qt.ElideLeft)
        self.setWordWrap(False)  # wrapping at the "/" would cut the frame off again
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.setMinimumHeight(90)
        self.setToolTip("Frames, worst first: click a row to go to its frame.")
        self.cellClicked.connect(self.jump_to_row)

    def display(self, results, classes, mask_layer=None) -> None:
        """Fill the table (frames named by their ids, from ``mask_layer``'s reader
        metadata) and start adding or refreshing the result layers."""
        self.pending = list(result_layers(results, classes).items())
        QTimer.singleShot(0, self._put_next_layer)
        self.setRowCount(0)
        count = max((r.index for r in results), default=-1) + 1
        names = frame_ids(mask_layer, len(getattr(mask_layer, "data", ())) or count)
        for r in sorted(results, key=lambda r: -r.noise_score):
            row = self.rowCount()
            self.insertRow(row)
            name = names[r.index] if r.index < len(names) else f"frame {r.index}"
            for col, text in enumerate(
                (name, f"{r.noise_score:.3f}", f"{100 * r.changed_fraction:.1f}")
            ):
                item = QTableWidgetItem(text)
                item.setFlags(item.flags() & ~Qt.ItemIsEditable)
                item.setData(Qt.UserRole, r.index)  # the frame index, for jump_to_row
                item.setToolTip(name)
                self.setItem(row, col, item)

    def _put_next_layer(self) -> None:
        source = self.session.source
        if source is None or source.problem(self.viewer, full=False):
            self.pending.clear()  # the layers (or the viewer) went away meanwhile
        if self.pending:
            name, (data, kwargs) = self.pending.pop(0)
            self._put_layer(name, data, kwargs)
        if self.pending:
            QTimer.singleShot(LAYER_GAP_MS, self._put_next_layer)
        elif self.on_layers_done is not None:
            self.on_layers_done()

    def _put_layer(self, name: str, data, kwargs: dict) -> None:
        if name in self.viewer.layers:
            self.viewer.layers[name].data = data
        elif name == CONFIDENCE:
            self.viewer.add_image(data, **kwargs)
        else:
            self.viewer.add_labels(data, **kwargs)
            if name == CHANGES:
                self.viewer.layers[name].contour = 2  # outlines keep the corrections visible

    def jump_to_row(self, row: int, _col: int = 0) -> None:
        """Show the frame of ``row``."""
        frame = int(self.item(row, 0).data(Qt.UserRole))
        self.viewer.dims.set_current_step(0, frame)
