"""Random appearance variation of rendered frames, for more varied training corpora.

:func:`vary` changes how a frame looks (global lighting and colour, gamma, blood tint patches,
smoke or haze, specular highlight spots, motion blur, sensor noise) but never its geometry, so
the part masks stay exact. :func:`vary_sequence` draws one :class:`Look` per video and applies
it to every frame (lighting stays consistent through a video, as in a real recording), with
fresh per-frame spots, blur and noise. Everything is drawn from the given
``numpy.random.Generator``, so the same seed gives the same output.

Also holds two small image helpers shared with :mod:`jcas_napari.data.synthetic_b`:
:func:`smooth_noise` and :func:`motion_blur`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import ellipse

REF_SIZE = 256.0
_BLOOD = np.array([0.55, 0.06, 0.07], np.float32)


def smooth_noise(shape: tuple[int, int], cells: int, rng: np.random.Generator) -> np.ndarray:
    """(H, W) float32 smooth random field, roughly unit variance, ``cells`` blobs across W.

    Cubic upsampling of coarse white noise: far cheaper than a wide Gaussian filter on the
    full-size grid, and the extra coarse border keeps the crop free of edge artefacts.
    """
    h, w = shape
    cw = max(2, int(cells))
    ch = max(2, int(round(cw * h / w)))
    coarse = rng.standard_normal((ch + 3, cw + 3))
    up = ndi.zoom(coarse, (h / ch, w / cw), order=3, mode="mirror")
    oy, ox = int(h / ch), int(w / cw)
    return up[oy : oy + h, ox : ox + w].astype(np.float32)


def motion_blur(image: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Blur (H, W, C) float ``image`` along the motion vector (dy, dx) in pixels.

    Averages integer-shifted copies along the path (a box line kernel): cheap, and exact
    enough for blur lengths of a few to a few tens of pixels.
    """
    length = float(np.hypot(dy, dx))
    if length < 1.0:
        return image
    n = int(np.ceil(length)) + 1
    steps = np.linspace(-0.5, 0.5, n)
    offs = np.rint(np.column_stack([steps * dy, steps * dx])).astype(int)
    p = int(np.abs(offs).max())
    h, w = image.shape[:2]
    padded = np.pad(image, ((p, p), (p, p), (0, 0)), mode="edge")
    out = np.zeros_like(image, dtype=np.float32)
    for oy, ox in offs:
        out += padded[p + oy : p + oy + h, p + ox : p + ox + w]
    return out / n


@dataclass
class Look:
    """Per-video appearance parameters drawn by :func:`draw_look` (maps are (H, W))."""

    gain: np.ndarray  # (3,) per-channel light colour
    offset: float  # black level shift
    contrast: float
    gamma: float
    blood: np.ndarray | None  # (H, W) blood tint alpha in [0, 1]
    smoke: np.ndarray | None  # (H, W) haze alpha in [0, 1]
    haze: np.ndarray  # (3,) colour of the haze
    spots: float  # expected number of specular spots per frame
    blur_p: float  # chance that a frame gets motion blur
    blur_len: float  # maximum blur length, px
    noise: float  # sensor noise standard deviation


def draw_look(shape: tuple[int, int], rng: np.random.Generator, strength: float = 1.0) -> Look:
    """Draw a :class:`Look` for frames of ``shape`` (H, W); ``strength`` 1 = typical, 0 = none.

    Each effect is switched on with a probability that grows with ``strength`` (so corpora
    mix plain and affected videos) and its size scales with ``strength`` too.
    """
    h, w = shape
    k = float(max(strength, 0.0))
    p = min(1.0, 0.45 * k)
    blood = smoke = None
    if rng.random() < p:
        # Threshold a coarse field: a few separate patches, not a uniform tint.
        field = smooth_noise(shape, 4, rng) - rng.uniform(0.4, 1.2)
        blood = np.clip(field * 1.5, 0, 1) * min(1.0, 0.7 * k)
    if rng.random() < p:
        field = 0.5 + 0.5 * smooth_noise(shape, 3, rng)
        smoke = np.clip(field, 0, 1) * rng.uniform(0.15, 0.5) * min(1.0, k)
    return Look(
        gain=np.exp(rng.normal(0, 0.09 * k, 3)).astype(np.float32),
        offset=float(rng.normal(0, 0.03 * k)),
        contrast=float(np.exp(rng.normal(0, 0.1 * k))),
        gamma=float(np.exp(rng.normal(0, 0.15 * k))),
        blood=blood,
        smoke=smoke,
        haze=np.array([0.85, 0.84, 0.82], np.float32) * rng.uniform(0.85, 1.05),
        spots=float(rng.uniform(0, 8) * k if rng.random() < p else 0.0),
        blur_p=0.35 * min(1.0, k),
        blur_len=float(12 * k * min(h, w) / REF_SIZE),
        noise=float(rng.uniform(0.005, 0.03) * k),
    )


def _spot_map(mask: np.ndarray, n: int, rng: np.random.Generator, scale: float) -> np.ndarray:
    """(H, W) float32 in [0, 1]: ``n`` small soft elliptic highlights.

    Half of them sit on instrument pixels (``mask`` > 0) when there are any, because polished
    metal reflects the endoscope light far more than tissue does.
    """
    h, w = mask.shape
    canvas = np.zeros((h, w), np.float32)
    tool = np.argwhere(mask > 0)
    for i in range(n):
        if i % 2 == 0 and len(tool):
            cy, cx = tool[rng.integers(len(tool))]
        else:
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(0.8, 4.0, 2) * max(scale, 0.4)
        rr, cc = ellipse(cy, cx, ry, rx, shape=(h, w), rotation=rng.uniform(0, np.pi))
        canvas[rr, cc] = np.maximum(canvas[rr, cc], rng.uniform(0.6, 1.0))
    return ndi.gaussian_filter(canvas, 0.8 * max(scale, 0.5))


def _outside_view(image: np.ndarray) -> np.ndarray:
    """(H, W) bool: the black frame outside the endoscope's view (near-black pixels connected
    to the image edge). Light effects must not reach it: it is outside the body."""
    dark = image.max(axis=-1) <= 8
    labels, _ = ndi.label(dark)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return np.isin(labels, edge[edge > 0])


def apply_look(
    image: np.ndarray, mask: np.ndarray, look: Look, rng: np.random.Generator
) -> np.ndarray:
    """Apply ``look`` to ``image`` (H, W, 3) uint8; returns a new (H, W, 3) uint8.

    ``mask`` (H, W) only guides where highlights go; the geometry is never changed, and the
    black frame around the view stays as it was. Per-frame randomness (spot positions, blur,
    noise) comes from ``rng``.
    """
    scale = min(image.shape[:2]) / REF_SIZE
    img = image.astype(np.float32) / 255.0
    img = img * look.gain + look.offset
    img = (img - 0.5) * look.contrast + 0.5
    img = np.clip(img, 0, 1) ** look.gamma
    if look.blood is not None:
        # Blood absorbs green/blue: multiply towards dark red rather than paint over.
        a = look.blood[..., None]
        img = img * (1 - a) + img * _BLOOD * a
    if look.smoke is not None:
        a = look.smoke[..., None]
        img = img * (1 - a) + look.haze * a
    n_spots = int(rng.poisson(look.spots)) if look.spots > 0 else 0
    if n_spots:
        spec = _spot_map(mask, n_spots, rng, scale)[..., None]
        img = 1 - (1 - img) * (1 - spec)  # screen blend: highlights saturate, never darken
    if rng.random() < look.blur_p and look.blur_len >= 1:
        length, angle = rng.uniform(1, look.blur_len), rng.uniform(0, np.pi)
        img = motion_blur(img, length * np.sin(angle), length * np.cos(angle))
    if look.noise > 0:
        img = img + rng.normal(0, look.noise, img.shape).astype(np.float32)
    out = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    outside = _outside_view(image)
    out[outside] = image[outside]
    return out


def vary(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, strength: float = 1.0
) -> np.ndarray:
    """One randomly varied copy of ``image`` (H, W, 3) uint8 -> (H, W, 3) uint8.

    ``mask`` (H, W) is unchanged by this (it stays valid for the result) and only guides
    highlight placement. ``strength`` <= 0 returns an unchanged copy.
    """
    if strength <= 0:
        return image.copy()
    return apply_look(image, mask, draw_look(image.shape[:2], rng, strength), rng)


def vary_sequence(
    frames: Iterable[tuple[np.ndarray, np.ndarray]],
    rng: np.random.Generator,
    strength: float = 1.0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Vary a video's (image (H,W,3) uint8, mask (H,W) uint8) frames with one shared look.

    Yields (varied image, the same mask). ``strength`` <= 0 passes frames through unchanged.
    """
    look = None
    for image, mask in frames:
        if strength <= 0:
            yield image, mask
            continue
        if look is None:
            look = draw_look(image.shape[:2], rng, strength)
        yield apply_look(image, mask, look, rng), mask
