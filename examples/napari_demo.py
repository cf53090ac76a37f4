"""Open napari with a noisy synthetic sequence and the jcas widgets docked.

Run: python examples/napari_demo.py   (needs a display; `make demo` checks for one)
Then: JCAS trainer -> Start (fine-tunes the shipped model, then cleans), Review
corrections -> Start review, and A / R / N / P / Shift+A / Ctrl+Z.
"""

from __future__ import annotations

import napari


def main() -> None:
    viewer = napari.Viewer(title="jcas-napari demo")
    viewer.open_sample("jcas-napari", "noisy-sequence")
    for widget in ("JCAS trainer", "Transition matrices", "Review corrections"):
        viewer.window.add_plugin_dock_widget("jcas-napari", widget)
    napari.run()


if __name__ == "__main__":
    main()
