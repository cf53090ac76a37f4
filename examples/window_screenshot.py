"""Screenshot of the whole napari window with the four jcas-napari widgets docked.

Run under a display of at least that size, e.g.
``xvfb-run -a -s "-screen 0 1920x1080x24" python examples/window_screenshot.py 1920 1080
docs/window_1920x1080.png``. It opens the noisy sample, docks the trainer, the review, the
transition matrices and the affinity inspector (the last two share a tabbed dock) and
saves what the user sees.
"""

from __future__ import annotations

import sys

import napari
from PIL import Image
from qtpy.QtWidgets import QApplication

WIDGETS = ("JCAS trainer", "Review corrections", "Transition matrices", "Affinity inspector")


def main(width: int, height: int, out: str) -> None:
    viewer = napari.Viewer()
    viewer.window.resize(width, height)
    viewer.open_sample("jcas-napari", "noisy-sequence")
    for name in WIDGETS:
        viewer.window.add_plugin_dock_widget("jcas-napari", name)
    app = QApplication.instance()
    for _ in range(30):  # let the docks settle (a script, not the plugin: no GUI to keep)
        app.processEvents()
    Image.fromarray(viewer.screenshot(canvas_only=False, flash=False)).save(out)
    viewer.close()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
