"""Procedural endoscopic scenes with surgical instruments and exact part masks.

Each frame shows reddish, textured tissue (vessels, fat, wet highlights, vignette, the
circular endoscope border) and one to three instruments entering from the image border.
An instrument is a dark metallic **shaft** (class 1), a silver **wrist** joint (class 2) and
two **clasper** jaws (class 3) with an opening angle. Later instruments occlude earlier ones.
A :class:`~jcas_napari.data.tool_style.Style` can change the colours, proportions and zoom
of a video's instruments and the hue of its tissue.

Sequences move like video: the camera pans slowly, and every instrument translates,
rotates and opens or closes its jaws smoothly. Everything is drawn from one
``numpy.random.Generator``, so the same seed gives the same frames.

Lengths are defined at 256x320 and scale with the frame size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.transform import resize

from jcas_napari.data.tool_style import DEFAULT, Style

SHAFT, WRIST, CLASPER = 1, 2, 3
REF_SIZE = 256.0


@dataclass
class Instrument:
    """Geometry of one instrument at time 0 and how it moves (lengths in pixels)."""

    tip: np.ndarray  # (2,) y, x of the shaft end / wrist start
    angle: float  # axis direction, radians; the shaft lies behind the tip
    shaft_width: float
    wrist_length: float
    jaw_length: float
    open_min: float  # half opening angle range of each jaw, radians
    open_max: float
    amp: np.ndarray  # (2,) tip motion amplitude, px
    freq: np.ndarray  # (4,) angular speeds of tip y, tip x, angle, opening (rad/frame)
    phase: np.ndarray  # (4,)
    angle_amp: float
    shade: float  # brightness of the metal parts
    palette: np.ndarray  # (3, 3) base RGB of shaft, wrist and jaws (from the style)

    def at(self, t: int) -> tuple[np.ndarray, float, float]:
        """Tip (y, x), axis angle and half opening angle at frame ``t``."""
        s = np.sin(self.freq * t + self.phase)
        tip = self.tip + self.amp * s[:2]
        angle = self.angle + self.angle_amp * s[2]
        opening = self.open_min + (self.open_max - self.open_min) * 0.5 * (1 + s[3])
        return tip, angle, opening


def _smooth_field(h: int, w: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth random field in about [-1, 1] with roughly ``cells`` blobs across the width."""
    ch, cw = max(2, int(round(cells * h / w))), max(2, cells)
    coarse = rng.standard_normal((ch + 2, cw + 2))
    field = resize(coarse, (h + 2 * h // ch, w + 2 * w // cw), order=3, mode="reflect")
    oy, ox = h // ch, w // cw
    return field[oy : oy + h, ox : ox + w].astype(np.float32)


def _vessels(h: int, w: int, rng: np.random.Generator, scale: float) -> np.ndarray:
    """(h, w) float map in [0, 1] of thin branching vessels drawn as smooth random walks."""
    canvas = np.zeros((h, w), np.float32)
    for _ in range(rng.integers(4, 9)):
        n = int(rng.integers(60, 160) * scale)
        y, x = rng.uniform(0, h), rng.uniform(0, w)
        heading = rng.uniform(0, 2 * np.pi)
        turns = ndi.gaussian_filter1d(rng.normal(0, 0.35, n), 4)
        headings = heading + np.cumsum(turns)
        step = 1.5 * scale
        ys = y + np.cumsum(step * np.sin(headings))
        xs = x + np.cumsum(step * np.cos(headings))
        keep = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
        strength = rng.uniform(0.5, 1.0)
        canvas[ys[keep].astype(int), xs[keep].astype(int)] = strength
    canvas = ndi.grey_dilation(canvas, size=(2, 2))
    thin = ndi.gaussian_filter(canvas, 0.9 * scale)
    return np.clip(thin / max(thin.max(), 1e-6) * 1.8, 0, 1)


def tissue_background(
    h: int, w: int, rng: np.random.Generator, tint: np.ndarray | None = None
) -> np.ndarray:
    """(h, w, 3) float32 RGB tissue texture in [0, 1], before vignette and border.

    ``tint`` (3, 3), if given, maps every RGB colour (a hue or saturation change).
    """
    scale = min(h, w) / REF_SIZE
    low = _smooth_field(h, w, 4, rng)
    mid = _smooth_field(h, w, 14, rng)
    fine = _smooth_field(h, w, 60, rng)
    base = np.array([0.78, 0.30, 0.26], np.float32) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    dark = np.array([0.42, 0.08, 0.08], np.float32)
    fat = np.array([0.86, 0.66, 0.42], np.float32)
    crevice = np.clip(0.5 + 0.35 * low + 0.2 * mid, 0, 1)[..., None]
    img = dark + (base - dark) * crevice
    fat_w = np.clip((_smooth_field(h, w, 6, rng) - 1.1) * 1.5, 0, 0.45)[..., None]
    img = img * (1 - fat_w) + fat * fat_w
    img = img * (1 + 0.06 * fine[..., None])
    vessels = _vessels(h, w, rng, scale)[..., None]
    img = img * (1 - 0.55 * vessels) + np.array([0.38, 0.02, 0.06], np.float32) * 0.55 * vessels
    # Wet tissue: small specular glints where the fine texture peaks.
    glint = np.clip((fine + 0.6 * mid - 2.3) * 3.0, 0, 1)
    glint = ndi.gaussian_filter(glint, 0.7 * scale)[..., None]
    img = img + glint * 0.9
    if tint is not None:
        img = img @ np.asarray(tint, np.float32).T
    return np.clip(img, 0, 1).astype(np.float32)


def endoscope_aperture(h: int, w: int) -> np.ndarray:
    """(h, w) float32 in [0, 1]: 1 inside the circular field of view, 0 outside (soft edge)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2)
    radius = 0.56 * w if w > h else 0.56 * h
    radius = min(radius, 0.5 * np.hypot(h, w) - 6)
    return np.clip((radius - r) / 3.0, 0, 1)


def vignette(h: int, w: int) -> np.ndarray:
    """(h, w) float32 light fall-off of the endoscope's light source."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2
    return np.clip(1.0 - 0.38 * r2, 0.25, 1).astype(np.float32)


def random_instrument(
    h: int, w: int, rng: np.random.Generator, direction: float, style: Style = DEFAULT
) -> Instrument:
    """An instrument whose shaft comes in from ``direction`` (radians, from the centre).

    ``style`` sets its colours, proportions and zoom; :data:`DEFAULT` draws from ``rng``
    exactly as family A always has, so seeds keep their scenes.
    """
    s = min(h, w) / REF_SIZE * style.size
    r = rng.uniform(0.0, 0.3) * min(h, w)
    a = rng.uniform(0, 2 * np.pi)
    tip = np.array([h / 2 + r * np.sin(a), w / 2 + r * np.cos(a)])
    width = rng.uniform(28, 40) * s
    lo = np.deg2rad(rng.uniform(2, 10))
    return Instrument(
        tip=tip,
        angle=direction + np.pi + rng.normal(0, 0.25),
        shaft_width=width,
        wrist_length=width * rng.uniform(*style.wrist_ratio),
        jaw_length=width * rng.uniform(*style.jaw_ratio),
        open_min=lo,
        open_max=lo + np.deg2rad(rng.uniform(10, 30)),
        amp=rng.uniform(4, 18, 2) * s,
        freq=rng.uniform(0.04, 0.15, 4),
        phase=rng.uniform(0, 2 * np.pi, 4),
        angle_amp=rng.uniform(0.05, 0.25),
        shade=rng.uniform(0.85, 1.1),
        palette=style.palette,
    )


def _metal(v_rel: np.ndarray, base: np.ndarray, spec: float) -> np.ndarray:
    """Cylinder shading across the tool: ``v_rel`` in [-1, 1] across its width -> (..., 3)."""
    v = np.clip(v_rel, -1, 1)
    body = np.sqrt(1 - 0.85 * v**2)
    stripe = np.exp(-(((v + 0.35) / 0.16) ** 2)) * spec
    return base * body[..., None] + stripe[..., None]


def render_instrument(
    yy: np.ndarray, xx: np.ndarray, ins: Instrument, t: int
) -> tuple[np.ndarray, np.ndarray]:
    """One instrument at frame ``t``: class map (H,W) uint8 (0 = not the tool) and its
    shaded colour (H,W,3) float32, given the pixel grids ``yy`` and ``xx`` (H,W)."""
    tip, angle, opening = ins.at(t)
    ca, sa = np.cos(angle), np.sin(angle)
    dy, dx = yy - tip[0], xx - tip[1]
    u = dx * ca + dy * sa  # along the axis, 0 at the end of the shaft
    v = -dx * sa + dy * ca  # across the axis
    half = ins.shaft_width / 2
    wrist_half = 0.82 * half
    wl = ins.wrist_length
    shaft = (u < 0) & (np.abs(v) < half)
    wrist = ((u >= 0) & (u < wl) & (np.abs(v) < wrist_half)) | (
        (u >= wl) & ((u - wl) ** 2 + v**2 < 0.7 * wrist_half**2)
    )
    jaws = np.zeros_like(shaft)
    jaw_u = np.zeros_like(u)
    for side in (-1.0, 1.0):
        phi = side * opening
        ju = (u - wl) * np.cos(phi) + v * np.sin(phi)
        jv = -(u - wl) * np.sin(phi) + v * np.cos(phi) - side * 0.2 * ins.shaft_width
        taper = 0.3 * ins.shaft_width * np.clip(1 - ju / ins.jaw_length, 0, 1) ** 0.6
        jaw = (ju >= -0.1 * ins.jaw_length) & (ju < ins.jaw_length) & (np.abs(jv) < taper + 0.6)
        jaws |= jaw
        jaw_u = np.where(jaw, ju, jaw_u)
    k = ins.shade
    colour = _metal(v / half, ins.palette[0] * k, 0.55)
    wrist_col = _metal(v / wrist_half, ins.palette[1] * k, 0.35)
    wrist_col *= (0.85 + 0.15 * np.cos(u * 2 * np.pi / (0.3 * ins.shaft_width)))[..., None]
    jaw_col = _metal(v / half, ins.palette[2] * k, 0.3)
    jaw_col *= (0.8 + 0.2 * np.cos(jaw_u * 2 * np.pi / 3.0))[..., None]
    colour = np.where(wrist[..., None], wrist_col, colour)
    colour = np.where(jaws[..., None], jaw_col, colour)
    # The joint ring between shaft and wrist is darker.
    ring = (np.abs(u) < 0.06 * ins.shaft_width) & (np.abs(v) < half)
    colour[ring] *= 0.35
    cls = np.zeros(u.shape, np.uint8)
    cls[shaft] = SHAFT
    cls[wrist] = WRIST
    cls[jaws] = CLASPER
    return cls, colour.astype(np.float32)


def _cast_shadow(img: np.ndarray, tool: np.ndarray, scale: float) -> None:
    """Darken ``img`` (H,W,3) in place under a soft, offset shadow of ``tool`` (H,W) bool."""
    shift = (int(5 * scale), int(4 * scale))
    shadow = ndi.gaussian_filter(np.roll(tool.astype(np.float32), shift, (0, 1)), 5 * scale)
    img *= (1 - 0.45 * shadow)[..., None]


def iter_sequence(
    n_frames: int,
    rng: np.random.Generator,
    size: tuple[int, int] = (256, 320),
    n_instruments: int | None = None,
    style: Style | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``n_frames`` frames of one video: (image (H,W,3) uint8, mask (H,W) uint8).

    ``n_instruments`` defaults to a draw from 1 to 3 for the whole sequence. ``style``
    (:func:`jcas_napari.data.tool_style.draw_style`) changes the instruments' colours,
    proportions and zoom and the tissue's hue; ``None`` draws plain family A.
    """
    style = style or DEFAULT
    h, w = size
    s = min(h, w) / REF_SIZE
    margin = int(24 * s)
    tint = None if style is DEFAULT else style.tissue
    background = tissue_background(h + 2 * margin, w + 2 * margin, rng, tint)
    aperture = endoscope_aperture(h, w)
    light = vignette(h, w)
    n = int(n_instruments if n_instruments is not None else rng.integers(1, 4))
    start = rng.uniform(0, 2 * np.pi)
    directions = start + np.arange(n) * 2 * np.pi / max(n, 1) + rng.normal(0, 0.3, n)
    tools = [random_instrument(h, w, rng, d, style) for d in directions]
    order = rng.permutation(n)
    pan_freq, pan_phase = rng.uniform(0.02, 0.06, 2), rng.uniform(0, 2 * np.pi, 2)
    blur = rng.uniform(0.5, 0.9) * s
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for t in range(n_frames):
        oy, ox = (margin + (margin - 1) * np.sin(pan_freq * t + pan_phase)).astype(int)
        img = background[oy : oy + h, ox : ox + w].copy()
        labels = np.zeros((h, w), np.uint8)
        for k in order:  # later instruments occlude earlier ones
            cls, colour = render_instrument(yy, xx, tools[k], t)
            tool = cls > 0
            _cast_shadow(img, tool, s)
            img[tool] = colour[tool]
            labels[tool] = cls[tool]
        img = ndi.gaussian_filter(img, (blur, blur, 0))
        img *= light[..., None]
        img += rng.normal(0, 0.012, img.shape).astype(np.float32)
        img *= aperture[..., None]
        labels[aperture < 0.5] = 0
        yield (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), labels


def stack_frames(frames) -> tuple[np.ndarray, np.ndarray]:
    """(image, mask) pairs -> images (T,H,W,3) and masks (T,H,W), for either scene family."""
    frames = list(frames)
    return np.stack([f[0] for f in frames]), np.stack([f[1] for f in frames])


def make_sequence(
    n_frames: int, rng: np.random.Generator, size: tuple[int, int] = (256, 320), **kwargs
) -> tuple[np.ndarray, np.ndarray]:
    """Stacked :func:`iter_sequence`: images (T,H,W,3) uint8 and masks (T,H,W) uint8."""
    return stack_frames(iter_sequence(n_frames, rng, size, **kwargs))


def make_frame(rng: np.random.Generator, size: tuple[int, int] = (256, 320), **kwargs):
    """One frame: image (H,W,3) uint8 and mask (H,W) uint8."""
    return next(iter_sequence(1, rng, size, **kwargs))
