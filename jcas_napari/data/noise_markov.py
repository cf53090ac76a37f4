"""Spatial Correction's Markov boundary noise on one binary mask."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def _grow4(m: np.ndarray) -> np.ndarray:
    g = m.copy()
    g[1:] |= m[:-1]
    g[:-1] |= m[1:]
    g[:, 1:] |= m[:, :-1]
    g[:, :-1] |= m[:, 1:]
    return g


def markov_binary(
    binary: np.ndarray,
    rng: np.random.Generator,
    steps: int,
    theta1: float,
    theta2: float,
    theta3: float,
    blur: bool = True,
) -> np.ndarray:
    """Spatial Correction's Markov boundary noise on one binary mask.

    ``steps`` times: with probability ``theta1`` take the outer ring (else the inner ring)
    and flip each of its pixels with probability ``theta2``. Then flip every pixel with
    probability ``theta3``, blur (5x5, sigma 2) and threshold at 0.5.
    """
    m = binary.copy()
    if steps == 0 and theta3 == 0:
        return m
    for _ in range(steps):
        if rng.random() < theta1:
            ring = _grow4(m) & ~m
        else:
            ring = m & ~_grow4(~m)
        idx = np.flatnonzero(ring)
        m.flat[idx[rng.random(idx.size) < theta2]] ^= True
    if theta3 > 0:
        m ^= rng.random(m.shape) < theta3
    if blur:
        m = ndi.gaussian_filter(m.astype(np.float32), 2.0, truncate=1.0) > 0.5
    return m
