"""Where the plugin's docks go: the two viewers (matrices, affinity inspector) share one
tabbed dock, so that the trainer and the review keep the height they need on a 1366×768
screen (with all four stacked, the review got about 100 px)."""

from __future__ import annotations

VIEWER_DOCKS = ("MatricesWidget", "InspectorWidget")


def _dock_and_window(widget):
    """The QDockWidget holding ``widget`` and its main window, or (None, None)."""
    from qtpy.QtWidgets import QDockWidget, QMainWindow

    try:
        dock = widget.parentWidget()
    except RuntimeError:  # the widget was closed before the timer fired
        return None, None
    while dock is not None and not isinstance(dock, QDockWidget):
        dock = dock.parentWidget()
    if dock is None or not isinstance(dock.parentWidget(), QMainWindow):
        return None, None
    return dock, dock.parentWidget()


def tab_with_siblings(widget, kinds: tuple[str, ...] = VIEWER_DOCKS) -> None:
    """Once ``widget`` is docked, stack its dock as a tab on an open dock that holds a
    widget of one of ``kinds`` (class names). Call it from a zero-delay timer: napari
    docks a plugin widget right after creating it. Does nothing when not docked."""
    from qtpy.QtWidgets import QDockWidget, QWidget

    dock, window = _dock_and_window(widget)
    if dock is None:
        return
    for other in window.findChildren(QDockWidget):
        if other is dock or other.isHidden():  # a closed dock; an unshown window is fine
            continue
        if any(type(w).__name__ in kinds for w in other.findChildren(QWidget)):
            window.tabifyDockWidget(other, dock)
            dock.raise_()
            return
