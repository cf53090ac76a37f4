"""Review corrections dock widget: A accept, R reject, N/P next/previous, Shift+A accept
the frame's undecided regions, B before/after, Ctrl+Z undo. Decisions and strokes painted
in ``reviewed`` share one undo history; decisions autosave; Save writes the reviewed masks.
A review runs only on the layers its cleaning results were computed from."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jcas_napari.napari import review_view as view
from jcas_napari.napari.layers import class_info_of, labels_kwargs
from jcas_napari.napari.names import CHANGES, CORRECTED, REVIEWED, frame_id
from jcas_napari.napari.provenance import ResultsSource
from jcas_napari.napari.review import ReviewMismatch, ReviewState, changes_from_paint
from jcas_napari.napari.review_panel import WHY_NOT_INSIDE, ReviewPanel
from jcas_napari.napari.review_view import CURRENT, OUTLINE, PIXELS
from jcas_napari.napari.review_view import canvas_px as _canvas_px  # noqa: F401 (tests)
from jcas_napari.napari.review_view import centre_inside as _centre_inside
from jcas_napari.napari.runtime import notify
from jcas_napari.napari.session import session_for

KEYS = {
    "a": "accept",
    "r": "reject",
    "n": "next",
    "p": "previous",
    "Shift-a": "accept_frame",
    "b": "before_after",
    "Control-z": "undo",
    "Control-Shift-z": "redo",
}
STATE_FILE = "review_state.json"
REVIEW_HEIGHT = 270  # px: its buttons and the counter without scrolling


def _set_aside(path: Path) -> Path:
    """Rename a state file that is not resumed to a free ``review_state.stale<n>.json``."""
    n = 1
    while (aside := path.with_name(f"{path.stem}.stale{n}{path.suffix}")).exists():
        n += 1
    return path.rename(aside)


class ReviewWidget(ReviewPanel):
    """Walk the change regions worst first and decide on each."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        # Docks share the height evenly; the review's buttons and counter need this much.
        self.setMinimumHeight(REVIEW_HEIGHT)
        self.state: ReviewState | None = None
        self.source: ResultsSource | None = None  # the layers the review's results are of
        self._said: str | None = None  # the last problem notified (one notification each)
        self._drawn: tuple | None = None  # (frame, box) of the drawn region pixels
        self._painted = None  # the `reviewed` layer whose strokes go into the history
        self._build()
        self.keys = view.KeyBinder(napari_viewer, {k: self._key(a) for k, a in KEYS.items()})
        self.session.results_dropped.connect(self._on_results_dropped)
        self.session.cleaned.connect(self._on_cleaned)
        self.viewer.layers.events.inserted.connect(self._on_inserted)
        self._fill_default_output()

    def _key(self, action: str):
        def handler(_viewer_or_layer) -> None:
            self.do(action)

        return handler

    # ------------------------------------------------------------------ signals

    def _stop(self, reason: str) -> None:
        """Disable the review: its regions belong to data that is gone or changed."""
        running = self.state is not None
        self.state, self.source = None, None
        self.keys.release()
        self.say(f"review stopped: {reason}" if running else reason)
        self._notify(f"review stopped: {reason}" if running else reason)

    def _on_results_dropped(self, reason: str) -> None:
        if self.state is not None:
            self._stop(reason)

    def _on_cleaned(self, results) -> None:
        # New results make a running review's regions stale; Start review again to see them.
        n = sum(len(r.region_info) for r in results)
        news = f"new cleaning results: {n} regions in {len(results)} frames"
        self._fill_default_output()
        if self.state is not None:
            self._stop(f"{news}: press 'Start review' to review them")
        else:
            self.say(f"{news}: press 'Start review'")

    def _on_inserted(self, *_) -> None:
        if self.state is not None:
            self.keys.bind()  # a layer added mid-review gets the review keys too

    def _on_paint(self, event) -> None:
        """A stroke in ``reviewed``: it joins the undo history after the decisions."""
        if self.state is not None:
            self.state.record_paint(changes_from_paint(event.value, self.state.reviewed.ndim))

    # ------------------------------------------------------------------ the review

    def start(self) -> None:
        """Build the review from the last cleaning; resume saved decisions if any."""
        try:  # the results must come from these very layers, unchanged since cleaning
            results, original = self.session.results_for(self.viewer)
            source = self.session.source
            state = ReviewState.from_results(original.data, results, source.image_fp)
        except ValueError as exc:  # StaleResults, or proposals of another shape
            self._stop(str(exc))
            return
        self.source = source
        if self.checked_output() is None:
            self.source = None
            self.say(f"choose an output folder outside the dataset: {WHY_NOT_INSIDE}")
            return
        self.state, self._said, self._drawn = state, None, None
        resumed = self._resume(self.output_dir() / STATE_FILE)
        self._add_layers(original)
        self.keys.bind()
        if resumed:
            notify("info", f"resumed {resumed} decisions from {self.output_dir() / STATE_FILE}")
        self._show()

    def _add_layers(self, original) -> None:
        """``reviewed`` (the masks being edited), the region's pixels and its box; the
        proposal layer is hidden so that it does not lie over ``reviewed``."""
        s, layers = self.state, self.viewer.layers
        classes = class_info_of(original)
        if REVIEWED in layers:
            layers[REVIEWED].data = s.reviewed
        else:
            kwargs = labels_kwargs(REVIEWED, classes, metadata={**original.metadata})
            self.viewer.add_labels(s.reviewed, **kwargs)
        layer = layers[REVIEWED]
        if layer is not self._painted:
            layer.events.paint.connect(self._on_paint)
            self._painted = layer
        if CORRECTED in layers:
            layers[CORRECTED].visible = False
        if PIXELS in layers:
            layers[PIXELS].data = np.zeros(s.reviewed.shape, np.uint8)
        else:
            self.viewer.add_labels(
                np.zeros(s.reviewed.shape, np.uint8),
                name=PIXELS,
                opacity=0.9,
                colormap=view.pixels_colormap(classes),
            )
        if CURRENT not in layers:
            self.viewer.add_shapes(
                name=CURRENT,
                ndim=s.reviewed.ndim,
                edge_color="yellow",
                face_color="transparent",
                edge_width=OUTLINE,
            )
        changes = layers[CHANGES] if CHANGES in layers else None
        if changes is not None and changes.data.shape == s.regions.shape:
            changes.colormap = view.changes_colormap()
            self._paint_changes(range(len(s.regions)))
            # Above `reviewed`: its decision colours are not tinted by the masks' colours.
            layers.move(layers.index(changes), layers.index(layer) + 1)
        layers.selection.active = layer  # paint here; the keys work on any layer

    def _resume(self, saved: Path) -> int:
        """Replay the saved decisions if they were made on this review's data.

        A state file of other data or proposals is not replayed (its ``frame:label`` keys
        name other regions) and is kept aside, so the next autosave does not destroy it.
        """
        if not saved.exists():
            return 0
        try:
            return self.state.load(saved)
        except ReviewMismatch as exc:
            kept = _set_aside(saved)
            notify("warning", f"decisions not resumed: {exc}; they are kept in {kept}")
        except (OSError, ValueError) as exc:  # unreadable or not JSON: start afresh
            kept = _set_aside(saved)
            notify("warning", f"decisions not resumed ({exc}); kept in {kept}")
        return 0

    def do(self, action: str) -> None:
        """Run a review action (accept, reject, next, previous, accept_frame, undo,
        before_after, redo)."""
        if self.state is None:
            return
        problem = self.source.problem(self.viewer, full=False) if self.source else None
        if problem:  # cheap check per key: the layers of the review are still there
            self._stop(problem)
            return
        if action == "before_after":
            self.after_box.toggle()
            return
        if action == "redo":
            self.say("redo is not available in a review: decide again instead")
            return
        undoing = self.state.last_step if action == "undo" else None
        changed = getattr(self.state, action)()
        if action in ("accept", "reject", "accept_frame", "undo") and changed:
            if action != "undo":
                self.state.next_undecided()
            if undoing == "decision" or action != "undo":
                self._autosave()
            self._paint_changes(changed)
        if REVIEWED in self.viewer.layers:
            self.viewer.layers[REVIEWED].refresh()
        self._show()
        if action == "undo" and self.state.kept_on_undo:
            self._tell_kept(undoing)

    def _tell_kept(self, undone: str | None) -> None:
        n = self.state.kept_on_undo
        what = "decision" if undone == "decision" else "stroke"
        text = f"undid the {what}; kept {n} pixels painted after it"
        self.note("undo", text)
        notify("info", text)

    def _autosave(self) -> None:
        out = self.checked_output()
        if out is not None:
            self.state.save(out / STATE_FILE)

    def _paint_changes(self, frames) -> None:
        """The changes layer follows the decisions: undecided, accepted, rejected."""
        layers = self.viewer.layers
        changes = layers[CHANGES] if CHANGES in layers else None
        if changes is None or changes.data.shape != self.state.regions.shape:
            return
        for f in frames:
            changes.data[f] = self.state.change_map(f)
        changes.refresh()

    def _show(self) -> None:
        s = self.state
        ref = s.current if s else None
        if ref is None:
            self.say("no changes to review")
            return
        c = s.counts()
        decision = s.decisions.get(ref.key, "undecided")
        original = self._original_layer()
        names = class_info_of(original).names
        k = len(names)
        change = (
            f"{names[ref.from_class]} → {names[ref.to_class]}, "
            if 0 <= ref.from_class < k and 0 <= ref.to_class < k
            else ""
        )
        frame = frame_id(original, ref.frame, len(s.reviewed))
        self.say(
            f"region {s.position + 1}/{c['regions']}: {frame}, {change}score {ref.score:.2f}, "
            f"{decision}\nreviewed {c['reviewed']}, accepted {c['accepted']}, "
            f"rejected {c['rejected']}"
        )
        self._draw_region()
        self._frame_view(ref)

    def _frame_view(self, ref) -> None:
        """Go to the region's frame; zoom so that it fills about a third of the view."""
        s = self.state
        if self.viewer.dims.ndim >= 3:
            self.viewer.dims.set_current_step(0, ref.frame)
        self.viewer.reset_view()
        y0, x0, y1, x1 = ref.bbox
        h, w = s.reviewed.shape[-2:]
        factor = min(2.5, max(1.0, 0.33 * max(h, w) / max(y1 - y0, x1 - x0, 8)))
        camera = self.viewer.scene.camera
        zoom = camera.zoom * factor
        camera.zoom = zoom
        # The box lies up to OUTLINE + 0.5 outside the frame: keep it in view too.
        camera.center = _centre_inside(
            ref.centre, (h, w), _canvas_px(self.viewer), zoom, margin=OUTLINE + 0.5
        )

    def _draw_region(self) -> None:
        """The box and the pixels of the region under review (before or after)."""
        s, layers = self.state, self.viewer.layers
        ref = s.current if s else None
        if ref is None or PIXELS not in layers or CURRENT not in layers:
            return
        layers[CURRENT].data = [view.box_corners(ref, s.reviewed.ndim)]
        pixels = layers[PIXELS]
        if self._drawn is not None:
            frame, box = self._drawn
            pixels.data[frame][box] = 0
        box, values = view.region_pixels(s, ref, self.after_box.isChecked())
        pixels.data[ref.frame][box] = values
        self._drawn = (ref.frame, box)
        pixels.refresh()

    def save(self) -> list[str]:
        """Write the reviewed masks to OUT/masks (new files; the originals are untouched)."""
        from jcas_napari.data.io import DatasetError
        from jcas_napari.napari.writer import write_labels

        if self.state is None:
            return []
        out = self.checked_output()
        if out is None:
            return []
        original = self._original_layer()
        try:
            paths = write_labels(
                str(out / "masks"),
                self.state.reviewed,
                {"metadata": original.metadata if original else {}},
            )
            self.state.save(out / STATE_FILE)
        except DatasetError as exc:
            self._notify(str(exc), error=True)
            return []
        notify("info", f"saved {len(paths)} reviewed masks to {out / 'masks'}")
        # The notification cuts long paths; the counter keeps the whole one until the
        # next decision.
        self.note("saved", f"saved {len(paths)} masks to {out / 'masks'}")
        return paths
