"""Affinity inspector: Alt+click a pixel to see what DAR aggregates for it."""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

from jcas_napari.napari.session import session_for

MODIFIER = "Alt"  # not used by napari's layer keymaps (pitfall: they swallow plain keys)


class InspectorWidget(QWidget):
    """Alt+click any pixel: an ``affinity`` layer shows its affinity to every pixel of the
    frame (upsampled from the DAR grid); the readout gives its predicted class, confidence
    and the share of its affinity mass per predicted class."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.readout = QLabel(f"{MODIFIER}+click a pixel of the frames.")
        self.readout.setWordWrap(True)
        QVBoxLayout(self).addWidget(self.readout)
        self.viewer.mouse_drag_callbacks.append(self._on_click)

    def _frames_layer(self):
        from napari.layers import Image

        for layer in self.viewer.layers:
            if isinstance(layer, Image) and layer.rgb:
                return layer
        return None

    def _on_click(self, viewer, event) -> None:
        if MODIFIER not in event.modifiers:
            return
        frames = self._frames_layer()
        if frames is None:
            return
        coords = np.round(frames.world_to_data(event.position)).astype(int)
        self.inspect(int(coords[0]) if frames.data.ndim == 4 else 0, int(coords[-2]),
                     int(coords[-1]))  # fmt: skip

    def inspect(self, frame: int, y: int, x: int) -> dict | None:
        """Show the affinity map of pixel (y, x) of ``frame``; returns the readout values."""
        from jcas_napari.napari.layers import as_frames

        frames = self._frames_layer()
        cleaner = self.session.get_cleaner() if frames is not None else None
        if cleaner is None:
            self.readout.setText("Train or clean first: there is no model yet.")
            return None
        images = as_frames(frames.data)
        frame = int(np.clip(frame, 0, len(images) - 1))
        image = images[frame]
        h, w = image.shape[:2]
        if not (0 <= y < h and 0 <= x < w):
            return None
        amap = cleaner.affinity_map(image, y, x)
        probs = cleaner.probabilities([image])[0]
        pred = probs.argmax(0)
        names = cleaner.class_names
        mass = np.array([amap[pred == k].sum() for k in range(len(names))])
        share = mass / max(mass.sum(), 1e-9)
        if "affinity" in self.viewer.layers:
            self.viewer.layers["affinity"].data = amap
        else:
            self.viewer.add_image(amap, name="affinity", colormap="inferno", opacity=0.75,
                                  contrast_limits=(0, 1))  # fmt: skip
        if "clicked pixel" in self.viewer.layers:
            self.viewer.layers["clicked pixel"].data = [[y, x]]
        else:
            self.viewer.add_points([[y, x]], name="clicked pixel", size=6, face_color="cyan",
                                   border_color="white")  # fmt: skip
        info = {"frame": frame, "y": y, "x": x, "class": names[int(pred[y, x])],
                "confidence": float(probs[:, y, x].max()),
                "share": {n: float(v) for n, v in zip(names, share)}}  # fmt: skip
        self.readout.setText(
            f"frame {frame}, pixel ({y}, {x}): {info['class']} "
            f"(confidence {info['confidence']:.2f})\naffinity mass: "
            + ", ".join(f"{n} {100 * v:.0f}%" for n, v in info["share"].items()))  # fmt: skip
        return info
