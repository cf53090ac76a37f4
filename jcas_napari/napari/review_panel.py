"""The review dock's controls and output folder (the review itself: review_widget.py).

``ReviewPanel`` lays out the buttons, the before/after toggle, the counter and the output
folder, in a scroll area so that a short dock never cuts the counter off; it knows where
the reviewed masks go (next to the dataset, never inside it) and notifies each problem
once. Everything here runs on the GUI thread.
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from jcas_napari.napari import review_view as view
from jcas_napari.napari.runtime import notify

BUTTONS = (  # label, action, tooltip
    ("Accept (A)", "accept", "Accept the proposed classes in the region under review"),
    ("Reject (R)", "reject", "Keep your original classes in the region under review"),
    ("Prev (P)", "previous", "Go to the previous region"),
    ("Next (N)", "next", "Go to the next region"),
    (
        "Accept frame (Shift+A)",
        "accept_frame",
        "Accept every undecided region of this frame; regions you decided keep your decision",
    ),
    (
        "Undo (Ctrl+Z)",
        "undo",
        "Undo the last decision or the last stroke painted in 'reviewed', newest first; "
        "pixels painted after a decision are kept when that decision is undone",
    ),
)
WHY_NOT_INSIDE = (
    "jcas-napari never writes into a dataset, so that your own masks stay exactly as "
    "they are and a reviewed copy is never read back as input"
)


class ReviewPanel(QWidget):
    """The controls of the review widget; subclasses provide ``do``, ``start``, ``save``,
    ``_draw_region`` and the ``source``/``session`` of the results."""

    source = None
    session = None
    viewer = None
    _said: str | None = None  # the last problem notified

    def say(self, text: str) -> None:
        """Set the counter's main line; the notes under it go with the old one."""
        self._status, self._notes = text, {}
        self.counter.setText(text)

    def note(self, kind: str, text: str) -> None:
        """A line under the counter's main one, until the next ``say``; a second note of
        the same ``kind`` (a second save, say) replaces the first."""
        self._notes[kind] = text
        self.counter.setText("\n".join([self._status, *self._notes.values()]))

    def _build(self) -> None:
        """The controls, in a scroll area so that a short dock never cuts them off."""
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("output folder for the reviewed masks")
        self.out_edit.setToolTip(
            "Where Save writes masks/ and where decisions autosave (review_state.json). "
            "Default: next to the dataset, never inside it."
        )
        self.browse_btn = QPushButton("Browse…")
        self.browse_btn.setToolTip("Choose the output folder")
        self.browse_btn.clicked.connect(self.browse)
        self.start_btn = QPushButton("Start review")
        self.start_btn.setToolTip("Review the last cleaning's proposals, worst frames first")
        self.after_box = QCheckBox("Show the proposal (B)")
        self.after_box.setChecked(True)
        self.after_box.setToolTip(
            "Inside the magenta edge of the region under review: ticked, the proposed "
            "classes (after); unticked, your original classes (before)"
        )
        self.after_box.toggled.connect(lambda _: self._draw_region())
        self.counter = QLabel("no review yet: train or clean first")
        self.counter.setWordWrap(True)
        self.counter.setToolTip(view.CHANGES_LEGEND)
        self._status, self._notes = self.counter.text(), {}
        self.save_btn = QPushButton("Save reviewed masks")
        self.save_btn.setToolTip("Write the reviewed masks as new files under <output>/masks")
        self.buttons = {}
        grid = QGridLayout()
        for i, (label, action, tip) in enumerate(BUTTONS):
            self.buttons[action] = btn = QPushButton(label)
            btn.setToolTip(tip)
            btn.clicked.connect(lambda _=False, a=action: self.do(a))
            # Two per row; the long "Accept frame" and "Undo" labels get a row each.
            grid.addWidget(btn, *((i // 2, i % 2, 1, 1) if i < 4 else (i - 2, 0, 1, 2)))
        out_row = QHBoxLayout()
        out_row.addWidget(QLabel("save to"))
        out_row.addWidget(self.out_edit, 1)
        out_row.addWidget(self.browse_btn)
        inner = QWidget()
        column = QVBoxLayout(inner)
        column.addLayout(out_row)
        # Start and Save side by side at the top: a short dock scrolls the rest, not them.
        actions = QHBoxLayout()
        actions.addWidget(self.start_btn)
        actions.addWidget(self.save_btn)
        column.addLayout(actions)
        column.addLayout(grid)
        for w in (self.after_box, self.counter):
            column.addWidget(w)
        column.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        scroll.setWidget(inner)
        QVBoxLayout(self).addWidget(scroll)
        self.start_btn.clicked.connect(self.start)
        self.save_btn.clicked.connect(self.save)

    def _original_layer(self):
        """The masks under review: the layer the results were cleaned from, if still open."""
        source = self.source or self.session.source
        layer = source.mask_layer if source is not None else None
        if layer is None or not any(lay is layer for lay in self.viewer.layers):
            return None
        return layer

    def _dataset_root(self) -> str | None:
        original = self._original_layer()
        return original.metadata.get("dataset_root") if original is not None else None

    def default_output(self) -> Path:
        """Next to the dataset (``<dataset>_reviewed``), never inside it."""
        root = self._dataset_root()
        if root:
            return Path(root).parent / f"{Path(root).name}_reviewed"
        return Path.home() / "jcas_reviewed"

    def _fill_default_output(self) -> None:
        # Shown before anything is written, so the user sees (and may change) where.
        if not self.out_edit.text().strip() and self._original_layer() is not None:
            self.out_edit.setText(str(self.default_output()))

    def output_dir(self) -> Path:
        text = self.out_edit.text().strip()
        if text:
            return Path(text)
        self.out_edit.setText(str(self.default_output()))
        return self.default_output()

    def browse(self) -> None:
        """Pick the output folder in a dialog."""
        start = self.out_edit.text().strip() or str(self.default_output().parent)
        folder = QFileDialog.getExistingDirectory(self, "Save reviewed masks to", start)
        if folder:
            self.out_edit.setText(folder)

    def checked_output(self) -> Path | None:
        """The output folder, or None (and one error) when it overlaps the dataset."""
        from jcas_napari.data.fsutil import check_output_dir
        from jcas_napari.data.io import DatasetError

        out, root = self.output_dir(), self._dataset_root()
        try:
            if root:
                check_output_dir(out, root)  # the CLI's rule: not inside, not containing
        except DatasetError as exc:
            self._notify(f"{exc}: {WHY_NOT_INSIDE}", error=True)
            return None
        return out

    # ------------------------------------------------------------------ messages

    def _notify(self, text: str, error: bool = False) -> None:
        """One notification per problem: the same one again (a second signal, a repeated
        key) is not shown twice in a row."""
        if text != self._said:
            self._said = text
            notify("error" if error else "warning", text)
