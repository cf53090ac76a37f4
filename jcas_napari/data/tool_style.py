"""Random scene styles for scene family A: instrument colour, shape and scale, tissue hue.

:mod:`jcas_napari.data.appearance` changes how a rendered frame looks (light, blood, smoke,
blur) but never what is drawn. A :class:`Style` changes what is drawn, once per video:
the base colour of each instrument part, how long the wrist and the jaws are against the
shaft's width, how large the instruments appear (a zoom), and the hue and saturation of the
tissue. The geometry of the masks follows the drawing, so they stay exact.

The ranges are generic, not fitted to any other scene family: any hue, any brightness from
near black to near white, zooms from about half to about twice the default.
:data:`DEFAULT` reproduces family A as it is without a style.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Style:
    """What one video's instruments and tissue look like (lengths relative to family A)."""

    size: float  # multiplies instrument widths and lengths
    palette: np.ndarray  # (3, 3) base RGB of shaft, wrist and jaws (rows)
    wrist_ratio: tuple[float, float]  # range of wrist length / shaft width
    jaw_ratio: tuple[float, float]  # range of jaw length / shaft width
    tissue: np.ndarray  # (3, 3) colour matrix applied to the tissue's RGB


def _frozen(a: np.ndarray) -> np.ndarray:
    """``a`` made read-only: styles are shared by every instrument and frame drawn with them."""
    a.setflags(write=False)
    return a


DEFAULT = Style(
    size=1.0,
    palette=_frozen(np.array([[0.16, 0.16, 0.18], [0.58, 0.58, 0.62], [0.7, 0.7, 0.74]])),
    wrist_ratio=(1.0, 1.5),
    jaw_ratio=(1.7, 2.4),
    tissue=_frozen(np.eye(3)),
)


def hue_matrix(angle: float, saturation: float) -> np.ndarray:
    """(3, 3) RGB matrix: scale saturation, then rotate hue by ``angle`` radians.

    Both act around the grey axis, so greys stay grey and brightness roughly holds.
    """
    k = np.full(3, 1 / np.sqrt(3))
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    rot = np.cos(angle) * np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * np.outer(k, k)
    grey = np.full((3, 3), 1 / 3)
    return rot @ (saturation * np.eye(3) + (1 - saturation) * grey)


def _colour(rng: np.random.Generator) -> np.ndarray:
    """(3,) RGB of a random instrument material: any hue, mostly unsaturated metal or plastic."""
    sat = rng.uniform(0, 0.6) if rng.random() < 0.4 else rng.uniform(0, 0.12)
    return np.array(colorsys.hsv_to_rgb(rng.random(), sat, rng.uniform(0.08, 0.85)))


def draw_style(rng: np.random.Generator, strength: float = 1.0) -> Style:
    """A random :class:`Style`; ``strength`` 0 gives :data:`DEFAULT`, 1 the full ranges.

    Colours, proportions and tissue hue are each switched on with a probability that
    grows with ``strength``, so a corpus still holds videos with family A's colours and
    shapes; the zoom is drawn for every video (its range grows with ``strength``).
    """
    if not strength >= 0:  # also NaN
        raise ValueError(f"style strength must be >= 0, got {strength}")
    k = float(min(strength, 1.0))
    if k == 0:
        return DEFAULT
    palette, tissue = DEFAULT.palette, DEFAULT.tissue
    wrist, jaw = DEFAULT.wrist_ratio, DEFAULT.jaw_ratio
    if rng.random() < 0.7 * k:
        palette = _frozen(np.stack([_colour(rng) for _ in range(3)]))
    if rng.random() < 0.6 * k:
        w0 = rng.uniform(0.5, 1.6)
        j0 = rng.uniform(1.0, 3.0)
        wrist, jaw = (w0, w0 * 1.4), (j0, j0 * 1.3)
    if rng.random() < 0.5 * k:
        tissue = _frozen(hue_matrix(rng.uniform(0, 2 * np.pi), rng.uniform(0.2, 1.2)))
    size = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0)) * k))
    return Style(size=size, palette=palette, wrist_ratio=wrist, jaw_ratio=jaw, tissue=tissue)
