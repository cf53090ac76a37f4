"""Scene family B: endoscopic scenes that look and move unlike family A, to test domain shift.

Family A (:mod:`jcas_napari.data.synthetic`) shows reddish tissue in a circular view with
slowly, smoothly moving dark-shafted tools. Family B differs in every respect:

* **tissue**: pale yellow fat lobules with pink septa (a Voronoi texture, finer than A's),
  dark blood pools and wet glints, under a per-video tinted light (neutral, cool or green);
* **view**: a rounded-rectangle field of view with black side bars and an off-centre light
  hot spot, a sharpened (not blurred) picture with sensor noise;
* **instruments**: a thick light-steel cylindrical **shaft** with a coloured marker band
  (class 1), a segmented gold **wrist** that bends at its joint (class 2) and two dark,
  curved, serrated **clasper** jaws (class 3);
* **motion**: jerky hand-held moves (hold still, then a quick move) with tremor, camera pans
  and occasional zooms that scale tissue and tools alike;
* **effects**: drifting surgical smoke, soft contact shadows, and motion blur whenever the
  camera or a tool moves fast.

Masks are exact: they come from the same geometry as the picture, before blur and smoke.
Everything is drawn from one ``numpy.random.Generator``, lazily frame by frame, so the same
seed gives the same frames and a shorter sequence is a prefix of a longer one. Lengths are
defined at 256x320 and scale with the frame size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from jcas_napari.data.appearance import motion_blur, smooth_noise
from jcas_napari.data.synthetic import stack_frames

SHAFT, WRIST, CLASPER = 1, 2, 3
REF_SIZE = 256.0
_FAT = np.array([0.98, 0.83, 0.52], np.float32)
_FASCIA = np.array([0.92, 0.64, 0.62], np.float32)
_SEPTUM = np.array([0.70, 0.30, 0.30], np.float32)
_BLOOD = np.array([0.36, 0.03, 0.04], np.float32)
_STEEL = np.array([0.70, 0.71, 0.74], np.float32)
_GOLD = np.array([0.82, 0.60, 0.22], np.float32)
_JAW = np.array([0.14, 0.14, 0.16], np.float32)
_BANDS = np.array([[0.10, 0.35, 0.85], [0.10, 0.62, 0.30], [0.90, 0.78, 0.10]], np.float32)
_TINTS = np.array([[1.0, 1.0, 1.0], [0.86, 0.97, 1.14], [0.94, 1.04, 0.95]], np.float32)
_HAZE = np.array([0.86, 0.86, 0.84], np.float32)


class Jerky:
    """A hand-held quantity (D,): it holds still, then moves quickly to a new random target.

    Unlike A's sinusoids, the motion has pauses and sudden moves. :meth:`step` advances one
    frame and draws from ``rng`` only when needed, which keeps sequences prefix-stable.
    """

    def __init__(
        self,
        start: ArrayLike,
        lo: ArrayLike,
        hi: ArrayLike,
        spread: ArrayLike,
        tremor: ArrayLike,
        hold: float = 0.35,
        moves: tuple[int, int] = (2, 7),
    ) -> None:
        self.lo, self.hi = np.asarray(lo, float), np.asarray(hi, float)
        self.now = np.clip(np.asarray(start, float), self.lo, self.hi)
        self.start, self.target = self.now.copy(), self.now.copy()
        self.spread, self.tremor = np.asarray(spread, float), np.asarray(tremor, float)
        self.hold, self.moves = hold, moves
        self.k = self.d = 0

    def step(self, rng: np.random.Generator) -> np.ndarray:
        """The value (D,) at the next frame."""
        if self.k >= self.d:
            self.start, self.k = self.now.copy(), 0
            if rng.random() < self.hold:
                self.target, self.d = self.now.copy(), int(rng.integers(3, 10))
            else:
                move = rng.standard_normal(self.now.shape) * self.spread
                self.target = np.clip(self.now + move, self.lo, self.hi)
                self.d = int(rng.integers(*self.moves))
        self.k += 1
        f = self.k / self.d
        self.now = self.start + (self.target - self.start) * f * f * (3 - 2 * f)
        return self.now + rng.standard_normal(self.now.shape) * self.tremor


@dataclass
class Tool:
    """Shape and motion of one family-B instrument (lengths in pixels at zoom 1)."""

    width: float  # shaft diameter
    wrist_length: float
    jaw_length: float
    curve: float  # sideways bend of both jaws (Maryland-style), fraction of the jaw length
    tooth: float  # serration depth, px
    band: np.ndarray  # (3,) colour of the marker ring on the shaft
    pose: Jerky  # tip y, tip x, axis angle, wrist bend
    grip: Jerky  # half opening angle of the jaws


def random_tool(h: int, w: int, rng: np.random.Generator, direction: float) -> Tool:
    """A tool whose shaft enters from ``direction`` (radians, seen from the frame centre)."""
    s = min(h, w) / REF_SIZE
    r, a = rng.uniform(0.0, 0.22) * min(h, w), rng.uniform(0, 2 * np.pi)
    angle = direction + np.pi + rng.normal(0, 0.2)
    start = [h / 2 + r * np.sin(a), w / 2 + r * np.cos(a), angle, rng.uniform(-0.3, 0.3)]
    width = rng.uniform(30, 40) * s
    pose = Jerky(
        start,
        lo=[0.25 * h, 0.22 * w, angle - 0.45, -0.65],
        hi=[0.75 * h, 0.78 * w, angle + 0.45, 0.65],
        spread=[24 * s, 24 * s, 0.2, 0.4],
        tremor=[0.5 * s, 0.5 * s, 0.004, 0.01],
    )
    return Tool(
        width=width,
        wrist_length=width * rng.uniform(0.7, 1.9),
        jaw_length=width * rng.uniform(1.4, 2.0),
        curve=rng.choice([-1, 1]) * rng.uniform(0.1, 0.3),
        tooth=0.08 * width,
        band=_BANDS[rng.integers(len(_BANDS))],
        pose=pose,
        grip=Jerky([rng.uniform(0.0, 0.3)], [0.0], [0.55], [0.3], [0.01], hold=0.4),
    )


def _lobules(
    h: int, w: int, rng: np.random.Generator, cell: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voronoi fat lobules of about ``cell`` px: dome (H,W) in [0,1] (1 at a lobule centre),
    septum (H,W) in [0,1] (1 on cell borders) and cell id (H,W) int."""
    n = max(8, int(h * w / cell**2))
    seeds = rng.uniform((0, 0), (h, w), (n, 2))
    pts = np.indices((h, w)).reshape(2, -1).T
    d, idx = cKDTree(seeds).query(pts, k=2)
    d1, d2 = d[:, 0].reshape(h, w), d[:, 1].reshape(h, w)
    dome = 1 - (2 * d1 / (d1 + d2 + 1e-6)) ** 2
    septum = np.clip(1 - (d2 - d1) / (0.07 * cell), 0, 1) ** 2
    return dome.astype(np.float32), septum.astype(np.float32), idx[:, 0].reshape(h, w)


def tissue(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) float32 RGB fatty tissue texture in [0, 1], before light and view."""
    s = min(h, w) / REF_SIZE
    cell = rng.uniform(12, 20) * s
    dome, septum, ids = _lobules(h, w, rng, cell)
    n_cells = int(ids.max()) + 1
    mix = np.clip(0.5 + 0.45 * smooth_noise((h, w), 3, rng), 0, 1)[..., None]
    img = _FAT * (1 - mix) + _FASCIA * mix
    img = img * (0.9 + 0.08 * rng.uniform(-1, 1, n_cells)[ids])[..., None]
    img = img * (0.72 + 0.28 * dome)[..., None]  # each lobule bulges towards the light
    img = img * (1 - 0.55 * septum[..., None]) + _SEPTUM * 0.55 * septum[..., None]
    img = img * (1 + 0.05 * smooth_noise((h, w), 80, rng))[..., None]
    pool = np.clip((smooth_noise((h, w), 5, rng) - rng.uniform(1.0, 1.8)) * 4, 0, 1)
    img = img * (1 - pool[..., None]) + _BLOOD * pool[..., None]
    # Wet glints: on the tops of some lobules (offset toward the light) and on pool rims.
    shiny = (rng.random(n_cells) < 0.12)[ids]
    glint = np.clip((dome - 0.9) * 12, 0, 1) * shiny
    glint = np.roll(glint, (-int(2 * s), -int(2 * s)), (0, 1))
    glint += 3 * pool * (1 - pool) * (smooth_noise((h, w), 40, rng) > 0.8)
    return np.clip(img + 0.8 * glint[..., None], 0, 1).astype(np.float32)


def field_of_view(h: int, w: int) -> np.ndarray:
    """(H, W) float32 in [0, 1]: 1 inside a rounded-rectangle view with black side bars."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    half_y, half_x = 0.47 * h, 0.44 * w
    r = 0.16 * min(h, w)
    qy = np.abs(yy - (h - 1) / 2) - (half_y - r)
    qx = np.abs(xx - (w - 1) / 2) - (half_x - r)
    dist = np.hypot(np.maximum(qy, 0), np.maximum(qx, 0)) + np.minimum(np.maximum(qy, qx), 0)
    return np.clip(r - dist + 0.5, 0, 1)


def light_hotspot(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """(H, W) float32 gain of a light source off the optical axis: a bright, partly
    over-exposed spot off-centre, darker elsewhere (A has a centred, flat vignette)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ly, lx = h * rng.uniform(0.3, 0.7), w * rng.uniform(0.25, 0.75)
    r2 = ((yy - ly) / (0.7 * h)) ** 2 + ((xx - lx) / (0.55 * w)) ** 2
    return (0.5 + 0.7 * np.exp(-r2)).astype(np.float32)


def _tool_geometry(
    yy: np.ndarray, xx: np.ndarray, tool: Tool, pose: np.ndarray, opening: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
    """Part regions (H,W) bool (shaft, wrist, jaws) and local coordinates (H,W) of one
    tool: along/across the shaft (u, v), along/across the wrist (u2, v2), and across each jaw
    (q, -1..1 from its inner to its outer edge)."""
    ty, tx, angle, bend = pose
    dy, dx = yy - ty, xx - tx
    u = dx * np.cos(angle) + dy * np.sin(angle)  # along the shaft axis, 0 at the joint
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    u2 = u * np.cos(bend) + v * np.sin(bend)  # the wrist's own axis, bent at the joint
    v2 = -u * np.sin(bend) + v * np.cos(bend)
    half, wl, jl = tool.width / 2, tool.wrist_length, tool.jaw_length
    wh = 0.78 * half
    shaft = (u < 0) & (np.abs(v) < half)
    # A knuckle disc at the joint fills the wedge that bending would leave open.
    wrist = ((u2 >= 0) & (u2 < wl) & (np.abs(v2) < wh)) | ((u >= 0) & (u**2 + v**2 < wh**2))
    jaws = np.zeros_like(shaft)
    q_all = np.zeros_like(u)
    for side in (-1.0, 1.0):
        phi = side * opening
        ju = (u2 - wl) * np.cos(phi) + v2 * np.sin(phi)
        jv = -(u2 - wl) * np.sin(phi) + v2 * np.cos(phi)
        # Both jaws curve the same way (a Maryland dissector), each on its own side.
        centre = side * 0.12 * tool.width + tool.curve * jl * np.clip(ju / jl, 0, 1) ** 2
        q = side * (jv - centre)  # > 0 towards the outside of this jaw
        thick = 0.17 * tool.width * (1 - 0.6 * np.clip(ju / jl, 0, 1)) + 0.5
        teeth = tool.tooth * ((ju / max(0.12 * jl, 1.5)) % 1.0)  # sawtooth on the inner edge
        inside = np.where(q >= 0, q < thick, -q < thick - teeth)
        jaw = (ju >= -0.05 * jl) & (ju < jl) & inside
        jaws |= jaw
        q_all = np.where(jaw, q / thick, q_all)
    return shaft, wrist, jaws, (u, v, u2, v2, q_all)


def _cylinder(across: np.ndarray, base: np.ndarray, spec: float, sharp: float) -> np.ndarray:
    """Shade a cylinder: ``across`` (H,W) in [-1,1] over its width -> colour (H,W,3).

    Lambert term for a light beside the camera plus a narrow specular band.
    """
    a = np.clip(across, -1, 1)
    normal = np.sqrt(1 - a**2)
    diffuse = 0.25 + 0.75 * np.clip(0.85 * normal - 0.5 * a, 0, 1)
    band = spec * np.exp(-(((a + 0.25) / sharp) ** 2))
    return base * diffuse[..., None] + band[..., None]


def render_tool(
    yy: np.ndarray, xx: np.ndarray, tool: Tool, pose: np.ndarray, opening: float
) -> tuple[np.ndarray, np.ndarray]:
    """Class map (H,W) uint8 (0 = not the tool) and colour (H,W,3) float32 of one tool,
    for pixel grids ``yy``/``xx`` (H,W) already mapped into the zoomed camera frame."""
    shaft, wrist, jaws, (u, v, u2, v2, q) = _tool_geometry(yy, xx, tool, pose, opening)
    half = tool.width / 2
    colour = _cylinder(v / half, _STEEL, 0.45, 0.09)
    ring = (u < -0.5 * tool.width) & (u > -0.8 * tool.width)
    colour = np.where(ring[..., None], _cylinder(v / half, tool.band, 0.3, 0.09), colour)
    wrist_col = _cylinder(v2 / (0.78 * half), _GOLD, 0.5, 0.12)
    seg = max(tool.wrist_length / 3, 2.0)
    gaps = (u2 % seg) < 0.15 * seg  # dark grooves between the wrist's vertebrae
    wrist_col = wrist_col * np.where(gaps, 0.35, 1.0)[..., None]
    colour = np.where(wrist[..., None], wrist_col, colour)
    jaw_col = _cylinder(q, _JAW, 0.35, 0.2)
    colour = np.where(jaws[..., None], jaw_col, colour)
    cls = np.zeros(u.shape, np.uint8)
    cls[shaft] = SHAFT
    cls[wrist] = WRIST
    cls[jaws] = CLASPER
    return cls, colour.astype(np.float32)


@dataclass
class _Scene:
    """Per-video state of :func:`iter_sequence` (fixed maps are (H,W) or (H',W'))."""

    world: np.ndarray  # (H', W', 3) tissue, larger than the frame for pans and zoom-outs
    fov: np.ndarray
    light: np.ndarray
    smoke: np.ndarray | None  # (H', W') smoke texture, None = no smoke in this video
    tools: list[Tool]
    camera: Jerky  # pan y, pan x (px)
    zoom: Jerky
    puff: Jerky  # smoke density
    last: dict  # previous pan and tool tips, for motion blur


def _new_scene(h: int, w: int, rng: np.random.Generator, n: int | None) -> _Scene:
    """Draw a video's fixed parts for (H, W) frames: tissue, light, smoke, tools, motions."""
    s = min(h, w) / REF_SIZE
    m = int(0.3 * max(h, w))
    world = tissue(h + 2 * m, w + 2 * m, rng) * _TINTS[rng.integers(len(_TINTS))]
    n = int(n if n is not None else rng.choice([1, 2, 2, 3]))
    start = rng.uniform(0, 2 * np.pi)
    dirs = start + np.arange(n) * 2 * np.pi / n + rng.normal(0, 0.35, n)
    smoke = smooth_noise(world.shape[:2], 4, rng) if rng.random() < 0.6 else None
    return _Scene(
        world=world,
        fov=field_of_view(h, w),
        light=light_hotspot(h, w, rng),
        smoke=smoke,
        tools=[random_tool(h, w, rng, d) for d in dirs],
        camera=Jerky([0, 0], [-0.4 * m] * 2, [0.4 * m] * 2, [12 * s] * 2, [0.3 * s] * 2, 0.5),
        zoom=Jerky([1.0], [0.9], [1.35], [0.3], [0.0], hold=0.85, moves=(6, 14)),
        puff=Jerky([0.1], [0.0], [0.5], [0.35], [0.01], hold=0.5, moves=(4, 10)),
        last={},
    )


def _view(scene: _Scene, pan: np.ndarray, zoom: float, h: int, w: int) -> np.ndarray:
    """(H, W, 3) tissue seen through the camera at ``pan`` (2,) px and ``zoom``."""
    hh, ww = scene.world.shape[:2]
    ys = (hh - 1) / 2 + pan[0] + (np.arange(h) - (h - 1) / 2) / zoom
    xs = (ww - 1) / 2 + pan[1] + (np.arange(w) - (w - 1) / 2) / zoom
    coords = np.array(np.meshgrid(ys, xs, indexing="ij"))
    world = scene.world
    channels = [
        ndi.map_coordinates(world[..., c], coords, order=1, mode="reflect") for c in range(3)
    ]
    return np.stack(channels, axis=-1)


def _add_tools(
    img: np.ndarray, labels: np.ndarray, scene: _Scene, zoom: float, rng: np.random.Generator
) -> None:
    """Draw every tool into ``img`` (H,W,3) and ``labels`` (H,W) in place, later ones on top;
    a fast tool is motion-blurred (its mask stays the sharp mid-exposure outline)."""
    h, w = labels.shape
    s = min(h, w) / REF_SIZE
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # Zoom scales tools about the frame centre like the tissue (they share the camera).
    yy = (h - 1) / 2 + (yy - (h - 1) / 2) / zoom
    xx = (w - 1) / 2 + (xx - (w - 1) / 2) / zoom
    for i, tool in enumerate(scene.tools):
        pose, opening = tool.pose.step(rng), float(tool.grip.step(rng)[0])
        cls, colour = render_tool(yy, xx, tool, pose, opening)
        alpha = (cls > 0).astype(np.float32)
        # Soft contact shadow: the light sits next to the lens, so shadows hug the tool.
        img *= (1 - 0.35 * ndi.gaussian_filter(alpha, 4 * s))[..., None]
        layer = np.concatenate([colour * alpha[..., None], alpha[..., None]], axis=-1)
        prev = scene.last.get(i, pose[:2])
        d = (pose[:2] - prev) * zoom
        scene.last[i] = pose[:2]
        if np.hypot(*d) > 2.0 * s:
            layer = motion_blur(layer, 0.7 * d[0], 0.7 * d[1])
        img *= 1 - layer[..., 3:]
        img += layer[..., :3]
        labels[cls > 0] = cls[cls > 0]


def _add_smoke(img: np.ndarray, scene: _Scene, t: int, rng: np.random.Generator) -> None:
    """Blend drifting smoke into ``img`` (H,W,3) in place: the texture rises over time."""
    density = float(scene.puff.step(rng)[0])
    if scene.smoke is None:
        return
    h, w = img.shape[:2]
    hh, ww = scene.smoke.shape
    s = min(h, w) / REF_SIZE
    rows = (np.arange(h) + int(3 * s * t)) % hh
    cols = (np.arange(w) + int(1 * s * t)) % ww
    field = scene.smoke[np.ix_(rows, cols)]
    a = (density * np.clip(0.55 + 0.45 * field, 0, 1))[..., None]
    img *= 1 - a
    img += _HAZE * a


def iter_sequence(
    n_frames: int,
    rng: np.random.Generator,
    size: tuple[int, int] = (256, 320),
    n_instruments: int | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``n_frames`` family-B frames of one video: (image (H,W,3) uint8, mask (H,W) uint8).

    ``n_instruments`` defaults to a draw from 1 to 3 (2 most often) for the whole sequence.
    """
    h, w = size
    s = min(h, w) / REF_SIZE
    scene = _new_scene(h, w, rng, n_instruments)
    for t in range(n_frames):
        pan, zoom = scene.camera.step(rng), float(scene.zoom.step(rng)[0])
        img = _view(scene, pan, zoom, h, w)
        labels = np.zeros((h, w), np.uint8)
        _add_tools(img, labels, scene, zoom, rng)
        img *= scene.light[..., None]
        _add_smoke(img, scene, t, rng)
        d = (pan - scene.last.get("pan", pan)) * zoom
        scene.last["pan"] = pan
        if np.hypot(*d) > 2.0 * s:  # the tissue slides under a moving camera
            img = motion_blur(img, 0.6 * d[0], 0.6 * d[1])  # shutter open ~60% of a frame
        # This camera sharpens its picture (A's blurs): an unsharp mask, then sensor noise.
        img = img + 0.6 * (img - ndi.gaussian_filter(img, (max(s, 0.6),) * 2 + (0,)))
        img += rng.normal(0, 0.015, img.shape).astype(np.float32)
        img *= scene.fov[..., None]
        labels[scene.fov < 0.5] = 0
        yield (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), labels


def make_sequence(
    n_frames: int, rng: np.random.Generator, size: tuple[int, int] = (256, 320), **kwargs
) -> tuple[np.ndarray, np.ndarray]:
    """Stacked :func:`iter_sequence`: images (T,H,W,3) uint8 and masks (T,H,W) uint8."""
    return stack_frames(iter_sequence(n_frames, rng, size, **kwargs))
