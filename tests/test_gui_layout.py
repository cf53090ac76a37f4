"""The whole window: all four jcas-napari widgets docked fit 1920×1080 and stay usable at
1366×768 (the review keeps its buttons and counter; the two viewers share a tabbed dock)."""

from __future__ import annotations

import pytest

from jcas_napari.napari.review_widget import REVIEW_HEIGHT

WIDGETS = ("JCAS trainer", "Review corrections", "Transition matrices", "Affinity inspector")


@pytest.mark.parametrize("size", [(1920, 1080), (1366, 768)])
def test_all_four_widgets_docked_fit_the_screen(make_napari_viewer, qtbot, size):
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(*size)
    docks = {}
    for name in WIDGETS:
        dock, _ = viewer.window.add_plugin_dock_widget("jcas-napari", name)
        docks[name] = dock
    window = docks[WIDGETS[0]].parentWidget()  # the QMainWindow the docks live in
    matrices, inspector = docks["Transition matrices"], docks["Affinity inspector"]
    qtbot.waitUntil(lambda: inspector in window.tabifiedDockWidgets(matrices), timeout=5000)
    hint = window.minimumSizeHint()
    assert hint.width() <= size[0] and hint.height() <= size[1]
    qtbot.waitUntil(lambda: window.height() == size[1], timeout=5000)
    review = docks["Review corrections"]
    assert review.widget().height() >= REVIEW_HEIGHT  # buttons and counter, no scrolling
    assert docks["JCAS trainer"].isVisible() and review.isVisible() and matrices.isVisible()
