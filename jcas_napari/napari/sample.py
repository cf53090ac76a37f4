"""napari sample data: synthetic surgical sequences with noisy and true masks."""

from __future__ import annotations

from jcas_napari.data.io import ClassInfo


def _sequence(preset: str, frames: int = 8, seed: int = 0) -> list:
    import numpy as np

    from jcas_napari.data.noise import corrupt_sequence
    from jcas_napari.data.synthetic import make_sequence
    from jcas_napari.napari.layers import labels_kwargs

    images, clean = make_sequence(frames, np.random.default_rng(seed))
    out = list(corrupt_sequence(clean, preset, np.random.default_rng(seed + 1)))
    noisy = np.stack([m for m, _ in out])
    classes = ClassInfo()
    meta = {"noise_preset": preset}
    if "matrix" in out[0][1].params:
        meta["true_t"] = np.asarray(out[0][1].params["matrix"]).tolist()
    return [
        (images, {"name": "frames", "rgb": True}, "image"),
        (clean, labels_kwargs("masks_clean (truth)", classes, truth=True, visible=False),
         "labels"),
        (noisy, labels_kwargs("masks (noisy)", classes, metadata=meta), "labels"),
    ]  # fmt: skip


def noisy_sequence() -> list:
    """8 frames with MS-TFAL-style `mix` noise (dilate/erode/affine/polygon per segment)."""
    return _sequence("mix")


def flip_sequence() -> list:
    """8 frames with `asymmetric50` pixel flips (the true T_C is in the layer metadata)."""
    return _sequence("asymmetric50")
