"""Per-viewer state shared by the jcas widgets, with signals instead of globals."""

from __future__ import annotations

import threading
import weakref
from weakref import WeakKeyDictionary

from psygnal import Signal

from jcas_napari.napari.provenance import ResultsSource, StaleResults


class Session:
    """What the widgets of one viewer share: the current model and the cleaning results.

    Signals: ``progress(TrainEvent)`` during training, ``model_ready(str)`` with a
    checkpoint path, ``cleaned(list)`` with the CleaningResult of every frame,
    ``results_dropped(str)`` with the reason when the results no longer fit the layers.
    """

    progress = Signal(object)
    model_ready = Signal(str)
    cleaned = Signal(object)
    results_dropped = Signal(str)

    def __init__(self) -> None:
        self.checkpoint: str | None = None
        self.models: list = []  # (checkpoint, frame indices or None) from the last fit
        self.results: list = []
        self.source: ResultsSource | None = None  # the layers the results belong to
        self.cleaner = None  # a core.clean.Cleaner for the current checkpoint, made lazily
        self.load_lock = threading.RLock()  # held while a worker loads a checkpoint

    def get_cleaner(self):
        from jcas_napari.core.clean import Cleaner

        # One load at a time: the cleaning and inspector workers may ask for the model at
        # once; one loads it, the other waits and reuses it.
        with self.load_lock:
            if self.checkpoint is None:
                return None
            if self.cleaner is None or self.cleaner.source != self.checkpoint:
                self.cleaner = Cleaner(self.checkpoint)
            return self.cleaner

    def set_results(self, results: list, source: ResultsSource | None) -> None:
        """Keep ``results`` together with the layers they were computed from."""
        self.results, self.source = results, source

    def drop_results(self, reason: str) -> None:
        """Forget the results (they would be applied to the wrong data) and say why."""
        if self.results:
            self.results, self.source = [], None
            self.results_dropped.emit(reason)

    def results_for(self, viewer, full: bool = True) -> tuple[list, object]:
        """The results and the mask layer they belong to, if they still fit ``viewer``.

        Results that no longer fit are dropped; ``StaleResults`` says why.
        """
        if not self.results:
            raise StaleResults("nothing to review: run 'Clean with this model' first")
        problem = (
            "results of unknown origin: run 'Clean with this model' again"
            if self.source is None
            else self.source.problem(viewer, full)
        )
        if problem:
            self.drop_results(problem)
            raise StaleResults(problem)
        return self.results, self.source.mask_layer

    def check_layers(self, viewer) -> None:
        """Drop the results once their layers are gone (cheap: identity and shape)."""
        if self.results and self.source is not None:
            problem = self.source.problem(viewer, full=False)
            if problem:
                self.drop_results(problem)


_SESSIONS: WeakKeyDictionary = WeakKeyDictionary()


def session_for(viewer) -> Session:
    """The one Session of ``viewer`` (created on first use, dropped with the viewer)."""
    if viewer not in _SESSIONS:
        session = _SESSIONS[viewer] = Session()
        ref = weakref.ref(viewer)  # the viewer owns this callback: no cycle through it

        def on_removed(*_) -> None:
            if ref() is not None:
                session.check_layers(ref())

        layers = getattr(viewer, "layers", None)
        if layers is not None:
            layers.events.removed.connect(on_removed)
    return _SESSIONS[viewer]
