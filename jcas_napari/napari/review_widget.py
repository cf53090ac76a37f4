"""Review corrections dock widget: A accept, R reject, N/P next/previous, Shift+A accept
the frame's undecided regions, Ctrl+Z undo. Decisions autosave; Save writes the reviewed
masks. A review runs only on the layers its cleaning results were computed from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)  # fmt: skip

from jcas_napari.napari.layers import class_info_of, labels_kwargs
from jcas_napari.napari.provenance import ResultsSource
from jcas_napari.napari.review import ReviewMismatch, ReviewState
from jcas_napari.napari.session import session_for

KEYS = {"a": "accept", "r": "reject", "n": "next", "p": "previous",
        "Shift-a": "accept_frame", "Control-z": "undo"}  # fmt: skip
STATE_FILE = "review_state.json"
CURRENT = "current region"  # Shapes layer: a box around the region under review
OUTLINE = 1.5  # its edge width, in frame pixels


def _canvas_px(viewer) -> tuple[float, float] | None:
    """The canvas size (H, W) in screen pixels, where napari exposes it."""
    size = getattr(getattr(viewer, "canvas", None), "size", None)
    return None if size is None else (float(size[0]), float(size[1]))


def _centre_inside(centre, frame, canvas, zoom: float) -> tuple[float, float]:
    """Centre on ``centre`` (y, x), but keep the view inside the frame where it fits.

    A region at the border then shows its surroundings, not the black outside the frame.
    ``canvas`` (H, W) pixels at ``zoom`` pixels per data unit gives the visible span; an
    axis the view spans entirely is centred on the frame.
    """
    if canvas is None:
        return centre[0], centre[1]
    out = []
    for c, size, px in zip(centre, frame, canvas):
        half = px / (2 * zoom)
        # napari puts pixel i at [i - 0.5, i + 0.5]: the frame spans [-0.5, size - 0.5].
        lo, hi = half - 0.5, size - 0.5 - half
        out.append((size - 1) / 2 if lo >= hi else min(max(c, lo), hi))
    return out[0], out[1]


def _set_aside(path: Path) -> Path:
    """Rename a state file that is not resumed to a free ``review_state.stale<n>.json``."""
    n = 1
    while (aside := path.with_name(f"{path.stem}.stale{n}{path.suffix}")).exists():
        n += 1
    return path.rename(aside)


class ReviewWidget(QWidget):
    """Walk the change regions worst first and decide on each."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.state: ReviewState | None = None
        self.source: ResultsSource | None = None  # the layers the review's results are of
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("output folder for the reviewed masks")
        self.start_btn = QPushButton("Start review")
        self.save_btn = QPushButton("Save reviewed masks")
        self.counter = QLabel("no review yet: train or clean first")
        self.counter.setWordWrap(True)
        buttons = {}
        row = QHBoxLayout()
        for label, action in (("Accept (A)", "accept"), ("Reject (R)", "reject"),
                              ("Prev (P)", "previous"), ("Next (N)", "next"),
                              ("Undo (Ctrl+Z)", "undo")):  # fmt: skip
            buttons[action] = QPushButton(label)
            buttons[action].clicked.connect(lambda _=False, a=action: self.do(a))
            row.addWidget(buttons[action])
        form = QFormLayout()
        form.addRow("save to", self.out_edit)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.start_btn)
        layout.addLayout(row)
        layout.addWidget(self.counter)
        layout.addWidget(self.save_btn)
        self.start_btn.clicked.connect(self.start)
        self.save_btn.clicked.connect(self.save)
        self.session.results_dropped.connect(self._on_results_dropped)
        self.session.cleaned.connect(self._on_cleaned)
        for key, action in KEYS.items():
            self.viewer.bind_key(key, self._key(action), overwrite=True)

    def _key(self, action: str):
        def handler(_viewer_or_layer) -> None:
            self.do(action)

        return handler

    def _original_layer(self):
        """The masks under review: the layer the results were cleaned from, if still open."""
        source = self.source or self.session.source
        layer = source.mask_layer if source is not None else None
        if layer is None or not any(lay is layer for lay in self.viewer.layers):
            return None
        return layer

    def output_dir(self) -> Path:
        text = self.out_edit.text().strip()
        if text:
            return Path(text)
        original = self._original_layer()
        root = original.metadata.get("dataset_root") if original is not None else None
        base = Path(root).parent / f"{Path(root).name}_reviewed" if root else (
            Path.home() / "jcas_reviewed")  # fmt: skip
        self.out_edit.setText(str(base))
        return base

    def _stop(self, reason: str) -> None:
        """Disable the review: its regions belong to data that is gone or changed."""
        from napari.utils.notifications import show_warning

        running = self.state is not None
        self.state, self.source = None, None
        self.counter.setText(f"review stopped: {reason}" if running else reason)
        if running:
            show_warning(f"jcas-napari: review stopped: {reason}")

    def _on_results_dropped(self, reason: str) -> None:
        if self.state is not None:
            self._stop(reason)

    def _on_cleaned(self, _results) -> None:
        # New results make a running review's regions stale; Start review again to see them.
        if self.state is not None:
            self._stop("new cleaning results: press 'Start review' to review them")

    def start(self) -> None:
        """Build the review from the last cleaning; resume saved decisions if any."""
        try:  # the results must come from these very layers, unchanged since cleaning
            results, original = self.session.results_for(self.viewer)
            source = self.session.source
            self.state = ReviewState.from_results(original.data, results, source.image_fp)
        except ValueError as exc:  # StaleResults, or proposals of another shape
            self._stop(str(exc))
            return
        self.source = source
        resumed = self._resume(self.output_dir() / STATE_FILE)
        if "reviewed" in self.viewer.layers:
            self.viewer.layers["reviewed"].data = self.state.reviewed
        else:
            self.viewer.add_labels(self.state.reviewed, **labels_kwargs(
                "reviewed", class_info_of(original), metadata={**original.metadata}))
        if CURRENT not in self.viewer.layers:
            self.viewer.add_shapes(name=CURRENT, ndim=self.state.reviewed.ndim,
                                   edge_color="yellow", face_color="transparent",
                                   edge_width=OUTLINE)  # fmt: skip
        layer = self.viewer.layers["reviewed"]
        for key, action in KEYS.items():  # layer keymaps win over the viewer's
            layer.bind_key(key, self._key(action), overwrite=True)
        self.viewer.layers.selection.active = layer  # the keys are bound to this layer
        if resumed:
            from napari.utils.notifications import show_info

            show_info(f"jcas-napari: resumed {resumed} decisions from "
                      f"{self.output_dir() / STATE_FILE}")  # fmt: skip
        self._show()

    def _resume(self, saved: Path) -> int:
        """Replay the saved decisions if they were made on this review's data.

        A state file of other data or proposals is not replayed (its ``frame:label`` keys
        name other regions) and is kept aside, so the next autosave does not destroy it.
        """
        from napari.utils.notifications import show_warning

        if not saved.exists():
            return 0
        try:
            return self.state.load(saved)
        except ReviewMismatch as exc:
            kept = _set_aside(saved)
            show_warning(f"jcas-napari: decisions not resumed: {exc}; they are kept in {kept}")
        except (OSError, ValueError) as exc:  # unreadable or not JSON: start afresh
            kept = _set_aside(saved)
            show_warning(f"jcas-napari: decisions not resumed ({exc}); kept in {kept}")
        return 0

    def do(self, action: str) -> None:
        """Run a review action (accept, reject, next, previous, accept_frame, undo)."""
        if self.state is None:
            return
        problem = self.source.problem(self.viewer, full=False) if self.source else None
        if problem:  # cheap check per key: the layers of the review are still there
            self._stop(problem)
            return
        changed = getattr(self.state, action)()
        if action in ("accept", "reject", "accept_frame"):
            self.state.next_undecided()
            self.state.save(self.output_dir() / STATE_FILE)
        elif action == "undo" and changed:
            self.state.save(self.output_dir() / STATE_FILE)
        if "reviewed" in self.viewer.layers:
            self.viewer.layers["reviewed"].refresh()
        self._show()

    def _show(self) -> None:
        s = self.state
        ref = s.current if s else None
        c = s.counts() if s else {}
        if ref is None:
            self.counter.setText("no changes to review")
            return
        decision = s.decisions.get(ref.key, "undecided")
        names = class_info_of(self._original_layer()).names
        change = (f"{names[ref.from_class]} → {names[ref.to_class]}, "
                  if 0 <= ref.from_class < len(names) and 0 <= ref.to_class < len(names)
                  else "")  # fmt: skip
        self.counter.setText(
            f"region {s.position + 1}/{c['regions']} (frame {ref.frame}, {change}"
            f"score {ref.score:.2f},"
            f" {decision}) · reviewed {c['reviewed']}, accepted {c['accepted']}, "
            f"rejected {c['rejected']}")  # fmt: skip
        if self.viewer.dims.ndim >= 3:
            self.viewer.dims.set_current_step(0, ref.frame)
        # Fit the frame, then zoom in on the region so that it fills about a third of it.
        self.viewer.reset_view()
        y0, x0, y1, x1 = ref.bbox
        h, w = s.reviewed.shape[-2:]
        factor = min(2.5, max(1.0, 0.33 * max(h, w) / max(y1 - y0, x1 - x0, 8)))
        self._outline(ref)
        zoom = self.viewer.scene.camera.zoom * factor
        self.viewer.scene.camera.zoom = zoom
        camera = self.viewer.scene.camera
        camera.center = _centre_inside(ref.centre, (h, w), _canvas_px(self.viewer), zoom)

    def _outline(self, ref) -> None:
        """A yellow box just outside the current region, on its frame.

        The region's pixels span [y0 - 0.5, y1 - 0.5] (bbox max exclusive); the box's edge
        (``OUTLINE`` wide, in data units, centred on the path) is drawn outside that.
        """
        if CURRENT not in self.viewer.layers:
            return
        y0, x0, y1, x1 = ref.bbox
        pad = 0.5 + OUTLINE / 2
        corners = np.array([[y0 - pad, x0 - pad], [y0 - pad, x1 - 1 + pad],
                            [y1 - 1 + pad, x1 - 1 + pad], [y1 - 1 + pad, x0 - pad]])  # fmt: skip
        if self.state.reviewed.ndim == 3:
            corners = np.c_[np.full(4, ref.frame), corners]
        self.viewer.layers[CURRENT].data = [corners]

    def save(self) -> list[str]:
        """Write the reviewed masks to OUT/masks (new files; the originals are untouched)."""
        from napari.utils.notifications import show_error, show_info

        from jcas_napari.data.fsutil import check_output_dir
        from jcas_napari.data.io import DatasetError
        from jcas_napari.napari.writer import write_labels

        if self.state is None:
            return []
        out = self.output_dir()
        original = self._original_layer()
        root = original.metadata.get("dataset_root") if original is not None else None
        try:
            if root:
                check_output_dir(out, root)  # the CLI's rule: not inside, not containing
            paths = write_labels(str(out / "masks"), self.state.reviewed,
                                 {"metadata": original.metadata if original else {}})  # fmt: skip
            self.state.save(out / STATE_FILE)
        except DatasetError as exc:
            show_error(f"jcas-napari: {exc}")
            return []
        show_info(f"jcas-napari: saved {len(paths)} reviewed masks to {out / 'masks'}")
        return paths
