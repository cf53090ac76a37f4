"""What cleaning results and review decisions belong to: layers and content fingerprints.

Results are only meaningful over the exact frames and masks they were computed from; the
layers' names say nothing (a reopened dataset has the same names). A ``ResultsSource``
holds the two layers (weakly: it must not keep removed layers alive) and a fingerprint of
their data at cleaning time. No Qt here: the checks run on the GUI thread, but only read.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from jcas_napari.data.fingerprint import fingerprint


class StaleResults(ValueError):
    """Cleaning results that no longer fit the layers in the viewer."""


def _in_viewer(layer, viewer) -> bool:
    # Identity, not names: a reopened dataset gives other layers with the same names.
    return layer is not None and any(lay is layer for lay in viewer.layers)


@dataclass(frozen=True)
class ResultsSource:
    """The image and mask layers that results were computed from, and their fingerprints."""

    image: weakref.ref
    masks: weakref.ref
    image_fp: str
    masks_fp: str
    shapes: tuple[tuple[int, ...], tuple[int, ...]]

    @classmethod
    def of(cls, image_layer, mask_layer) -> ResultsSource:
        """Record the layers as they are now (call it when the cleaning input is read)."""
        image, masks = np.asarray(image_layer.data), np.asarray(mask_layer.data)
        return cls(
            weakref.ref(image_layer),
            weakref.ref(mask_layer),
            fingerprint(image),
            fingerprint(masks),
            (image.shape, masks.shape),
        )

    @property
    def mask_layer(self):
        return self.masks()

    def problem(self, viewer, full: bool = True) -> str | None:
        """Why results from these layers no longer fit ``viewer`` (None: they fit).

        ``full=False`` checks only that the layers are there with the same shapes (cheap,
        for every key press); ``full=True`` also compares the content fingerprints.
        """
        image, masks = self.image(), self.masks()
        if not (_in_viewer(image, viewer) and _in_viewer(masks, viewer)):
            return (
                "the frames or masks that were cleaned are no longer open: run "
                "'Clean with this model' on the layers to review"
            )
        if (
            (np.shape(image.data), np.shape(masks.data)) != self.shapes
            or full
            and (
                fingerprint(image.data) != self.image_fp or fingerprint(masks.data) != self.masks_fp
            )
        ):
            return (
                f"the data of '{image.name}' or '{masks.name}' changed since cleaning: "
                "run 'Clean with this model' again"
            )
        return None
