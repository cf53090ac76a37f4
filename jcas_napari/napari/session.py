"""Per-viewer state shared by the jcas widgets, with signals instead of globals."""

from __future__ import annotations

from weakref import WeakKeyDictionary

from psygnal import Signal


class Session:
    """What the widgets of one viewer share: the current model and the cleaning results.

    Signals: ``progress(TrainEvent)`` during training, ``model_ready(str)`` with a
    checkpoint path, ``cleaned(list)`` with the CleaningResult of every frame.
    """

    progress = Signal(object)
    model_ready = Signal(str)
    cleaned = Signal(object)

    def __init__(self) -> None:
        self.checkpoint: str | None = None
        self.results: list = []
        self.cleaner = None  # a core.clean.Cleaner for the current checkpoint, made lazily

    def get_cleaner(self):
        from jcas_napari.core.clean import Cleaner

        if self.checkpoint is None:
            return None
        if self.cleaner is None or self.cleaner.source != self.checkpoint:
            self.cleaner = Cleaner(self.checkpoint)
        return self.cleaner


_SESSIONS: WeakKeyDictionary = WeakKeyDictionary()


def session_for(viewer) -> Session:
    """The one Session of ``viewer`` (created on first use, dropped with the viewer)."""
    if viewer not in _SESSIONS:
        _SESSIONS[viewer] = Session()
    return _SESSIONS[viewer]
