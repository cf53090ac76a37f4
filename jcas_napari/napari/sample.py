"""napari sample data: a synthetic surgical frame with its noisy and true masks."""

from __future__ import annotations


def synthetic_scene():
    """Layer data for a synthetic 8-frame sequence: image, noisy mask and clean mask."""
    import numpy as np

    from jcas_napari.data.noise import corrupt_sequence
    from jcas_napari.data.synthetic import make_sequence

    images, clean = make_sequence(8, np.random.default_rng(0))
    noisy = np.stack(
        [m for m, _ in corrupt_sequence(clean, "mix", np.random.default_rng(1))]
    )
    return [
        (images, {"name": "frames", "rgb": True}, "image"),
        (clean, {"name": "masks_clean (truth)", "visible": False, "opacity": 0.5}, "labels"),
        (noisy, {"name": "masks (noisy)", "opacity": 0.5}, "labels"),
    ]
