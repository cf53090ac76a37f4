"""napari sample data: synthetic surgical sequences with noisy and true masks.

napari calls these functions on the GUI thread. Generating the sequence took 0.6-0.9 s on
an idle core (2.5-9.8 s were reported on a busy machine), so the two samples ship
pre-generated in ``sample_sequence.npz`` (about 1.5 MB; loading it takes ~10 ms). Both
share the frames and true masks (seed 0); only the noise differs. If the file is missing
the sequence is generated as before. Regenerate the file after changing the generator:
``python -m jcas_napari.napari.sample``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from jcas_napari.data.io import ClassInfo
from jcas_napari.napari.names import FRAMES, NOISY_MASKS, TRUTH_MASKS

SHIPPED_FILE = Path(__file__).with_name("sample_sequence.npz")
PRESETS = ("mix", "asymmetric50")


def generate(preset: str, frames: int = 8, seed: int = 0) -> tuple:
    """(images, true masks, noisy masks, true T_C or None) from the synthetic generator."""
    from jcas_napari.data.noise import corrupt_sequence
    from jcas_napari.data.synthetic import make_sequence

    images, clean = make_sequence(frames, np.random.default_rng(seed))
    out = list(corrupt_sequence(clean, preset, np.random.default_rng(seed + 1)))
    noisy = np.stack([m for m, _ in out])
    matrix = out[0][1].params.get("matrix")
    return images, clean, noisy, None if matrix is None else np.asarray(matrix, float)


def load(preset: str) -> tuple:
    """The shipped arrays of ``preset`` (as ``generate`` makes them), else generated."""
    if SHIPPED_FILE.is_file():
        with np.load(SHIPPED_FILE) as data:
            if f"noisy_{preset}" in data.files:
                t = data[f"true_t_{preset}"] if f"true_t_{preset}" in data.files else None
                return data["images"], data["clean"], data[f"noisy_{preset}"], t
    return generate(preset)


def write_shipped(path: Path = SHIPPED_FILE) -> Path:
    """Write the samples file (frames and truth once, the noisy masks per preset)."""
    from jcas_napari.data.io import atomic_write_bytes

    arrays: dict[str, np.ndarray] = {}
    for preset in PRESETS:
        images, clean, noisy, t = generate(preset)
        arrays.update(images=images, clean=clean, **{f"noisy_{preset}": noisy})
        if t is not None:
            arrays[f"true_t_{preset}"] = t
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def _sequence(preset: str) -> list:
    from jcas_napari.napari.layers import labels_kwargs

    images, clean, noisy, t = load(preset)
    classes = ClassInfo()
    meta = {"noise_preset": preset, **({"true_t": t.tolist()} if t is not None else {})}
    return [
        (images, {"name": FRAMES, "rgb": True}, "image"),
        (clean, labels_kwargs(TRUTH_MASKS, classes, truth=True, visible=False), "labels"),
        (noisy, labels_kwargs(NOISY_MASKS, classes, metadata=meta), "labels"),
    ]


def noisy_sequence() -> list:
    """8 frames with MS-TFAL-style `mix` noise (dilate/erode/affine/polygon per segment)."""
    return _sequence("mix")


def flip_sequence() -> list:
    """8 frames with `asymmetric50` pixel flips (the true T_C is in the layer metadata)."""
    return _sequence("asymmetric50")


if __name__ == "__main__":
    print(write_shipped())
