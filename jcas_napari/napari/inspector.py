"""Affinity inspector: Alt+click a pixel to see what DAR aggregates for it.

The model runs in a napari worker (an Alt+click stalled the GUI for about a second when
it ran in the click handler); the layers and the readout change only in the worker's
slot, on the GUI thread. A click during a run waits, and only the newest one runs next.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QLabel, QScrollArea, QVBoxLayout, QWidget

from jcas_napari.napari.docking import tab_with_siblings
from jcas_napari.napari.runtime import notify
from jcas_napari.napari.session import session_for

MODIFIER = "Alt"  # not used by napari's layer keymaps (pitfall: they swallow plain keys)
AFFINITY, CLICKED = "affinity", "clicked pixel"
HELP = (
    f"{MODIFIER}+click a pixel of the frames. The 'affinity' layer then shows how similar "
    "every pixel's features are to that pixel's (0 to 1, bright = similar): DAR averages "
    "the predictions of the bright pixels to refine the clicked one."
)


def affinity_readout(amap: np.ndarray, probs: np.ndarray, names, y: int, x: int) -> dict:
    """The clicked pixel's class and confidence, and its affinity mass per predicted class
    (runs in the worker: plain arrays in, plain values out)."""
    pred = probs.argmax(0)
    mass = np.array([amap[pred == k].sum() for k in range(len(names))])
    share = mass / max(mass.sum(), 1e-9)
    return {
        "class": names[int(pred[y, x])],
        "confidence": float(probs[:, y, x].max()),
        "share": {n: float(v) for n, v in zip(names, share)},
    }


class InspectorWidget(QWidget):
    """Alt+click any pixel: an ``affinity`` layer shows its affinity to every pixel of the
    frame (upsampled from the DAR grid); the readout gives its predicted class, confidence
    and the share of its affinity mass per predicted class."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        QTimer.singleShot(0, lambda: tab_with_siblings(self))
        self.readout = QLabel(HELP)
        self.readout.setWordWrap(True)
        self.readout.setAlignment(Qt.AlignTop | Qt.AlignLeft)
        self.readout.setToolTip(HELP)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.readout)
        QVBoxLayout(self).addWidget(scroll)
        self.worker = None
        self._pending: tuple[int, int, int] | None = None
        self.last: dict | None = None  # the values of the last readout
        self.viewer.mouse_drag_callbacks.append(self._on_click)
        for signal in (self.session.cleaned, self.session.model_ready):
            signal.connect(lambda *_: self.clear("the model or the results changed"))
        self.viewer.layers.events.removed.connect(self._on_removed)
        self.viewer.layers.events.inserted.connect(self._on_inserted)
        self._watched = None
        self._on_inserted()

    def _frames_layer(self):
        from napari.layers import Image

        for layer in self.viewer.layers:
            if isinstance(layer, Image) and layer.rgb:
                return layer
        return None

    # ------------------------------------------------------------------ clearing

    def clear(self, reason: str = "") -> None:
        """Remove the map and the clicked pixel: they belong to data that changed."""
        for name in (AFFINITY, CLICKED):
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
        self.last = None
        self.readout.setText(f"{reason}: {HELP}" if reason else HELP)

    def _on_inserted(self, *_) -> None:
        frames = self._frames_layer()
        if frames is not None and frames is not self._watched:
            frames.events.data.connect(lambda *_: self.clear("the frames changed"))
            self._watched = frames

    def _on_removed(self, event) -> None:
        if getattr(event, "value", None) is self._watched and self._watched is not None:
            self._watched = None
            self.clear("the frames were closed")

    # ------------------------------------------------------------------ inspecting

    def _on_click(self, viewer, event) -> None:
        if MODIFIER not in event.modifiers:
            return
        frames = self._frames_layer()
        if frames is None:
            return
        coords = np.round(frames.world_to_data(event.position)).astype(int)
        frame = int(coords[0]) if frames.data.ndim == 4 else 0
        self.inspect(frame, int(coords[-2]), int(coords[-1]))

    def inspect(self, frame: int, y: int, x: int) -> bool:
        """Start the affinity map of pixel (y, x) of ``frame`` in a worker; False when
        there is nothing to inspect. The layers follow in ``_show``."""
        from napari.qt.threading import create_worker

        from jcas_napari.napari.layers import as_frames
        from jcas_napari.napari.runtime import start_worker

        frames = self._frames_layer()
        if frames is None or self.session.checkpoint is None:
            self.readout.setText(f"Train or clean first: there is no model yet. {HELP}")
            return False
        if self.worker is not None:  # one run at a time; the newest click runs next
            self._pending = (frame, y, x)
            return True
        frame = int(np.clip(frame, 0, len(frames.data) - 1 if frames.data.ndim == 4 else 0))
        image = np.array(as_frames(frames.data[frame] if frames.data.ndim == 4 else frames.data)[0])
        h, w = image.shape[:2]
        if not (0 <= y < h and 0 <= x < w):
            return False
        session = self.session

        def run() -> dict:
            cleaner = session.get_cleaner()  # loads the model here, off the GUI thread
            amap = cleaner.affinity_map(image, y, x)
            probs = cleaner.probabilities([image])[0]
            info = affinity_readout(amap, probs, cleaner.class_names, y, x)
            return {"frame": frame, "y": y, "x": x, "amap": amap, **info}

        self.readout.setText(f"computing the affinity of pixel ({y}, {x})…")
        self.worker = create_worker(run)
        self.worker.returned.connect(self._show)
        self.worker.errored.connect(self._failed)
        self.worker.finished.connect(self._next)
        start_worker(self.worker)
        return True

    def _next(self) -> None:
        self.worker = None
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self.inspect(*pending)

    def _failed(self, exc) -> None:
        self.readout.setText(f"the affinity map failed: {exc}")
        notify("error", f"affinity map failed: {exc}")

    def _show(self, info: dict) -> None:
        """The slot: put the map and the clicked pixel on the canvas, fill the readout."""
        amap, y, x = info.pop("amap"), info["y"], info["x"]
        if AFFINITY in self.viewer.layers:
            self.viewer.layers[AFFINITY].data = amap
        else:  # additive: dark (dissimilar) pixels leave the frame as it is
            self.viewer.add_image(
                amap,
                name=AFFINITY,
                colormap="inferno",
                opacity=0.7,
                blending="additive",
                contrast_limits=(0, 1),
            )
        if CLICKED in self.viewer.layers:
            self.viewer.layers[CLICKED].data = [[y, x]]
        else:
            self.viewer.add_points(
                [[y, x]], name=CLICKED, size=6, face_color="cyan", border_color="white"
            )
        self.last = info
        self.readout.setText(
            f"frame {info['frame']}, pixel ({y}, {x}): {info['class']} "
            f"(confidence {info['confidence']:.2f})\n"
            "affinity mass (how much of what DAR averages for it comes from each predicted "
            "class): "
            + ", ".join(f"{n} {100 * v:.0f}%" for n, v in info["share"].items())
            + "\nBright = features similar to the clicked pixel's; dark = ignored by DAR."
        )
