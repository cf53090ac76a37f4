"""Shape label noise on one class at a time: morphology, fitted ellipses, affine moves and
coarse polygons, applied per connected component, then pasted back in a drawn order.

Each foreground class is corrupted as a binary mask (:func:`corrupt_binary`) and the
results composited on background (:func:`composite`); background is never a source class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from scipy import ndimage as ndi
from skimage import draw, measure, morphology
from skimage.transform import AffineTransform, warp


def _disk(r: int) -> np.ndarray:
    return morphology.disk(int(r)).astype(bool)


def composite(
    mask: np.ndarray, binaries: dict[int, np.ndarray], order: list[int], ignore_index: int
) -> np.ndarray:
    """Paste per-class binary masks on background in ``order`` (later ones win)."""
    out = np.zeros_like(mask)
    for c in order:
        if c in binaries:
            out[binaries[c]] = c
    out[mask == ignore_index] = ignore_index
    return out


def components(binary: np.ndarray, min_area: int) -> Iterator[np.ndarray]:
    """Connected components of ``binary`` with at least ``min_area`` pixels."""
    lab, n = ndi.label(binary)
    for i in range(1, n + 1):
        comp = lab == i
        if comp.sum() >= min_area:
            yield comp


def _per_component(binary: np.ndarray, min_area: int, fn: Callable[[np.ndarray], np.ndarray]):
    """Apply ``fn`` to each component; components under ``min_area`` pass through unchanged."""
    lab, n = ndi.label(binary)
    out = np.zeros_like(binary)
    for i in range(1, n + 1):
        comp = lab == i
        out |= fn(comp) if comp.sum() >= min_area else comp
    return out


def fitted_ellipse(comp: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """The ellipse with the same second moments as ``comp`` (H,W bool), axes times ``scale``."""
    props = measure.regionprops(comp.astype(np.uint8))[0]
    cy, cx = props.centroid
    a = max(props.axis_major_length / 2 * scale, 1.0)
    b = max(props.axis_minor_length / 2 * scale, 1.0)
    # regionprops' orientation is the angle between the row axis and the major axis.
    rr, cc = draw.ellipse(cy, cx, a, b, shape=comp.shape, rotation=props.orientation)
    out = np.zeros_like(comp)
    out[rr, cc] = True
    return out


def affine_component(comp: np.ndarray, angle: float, shift: tuple[float, float], scale: float):
    """Rotate (degrees) and scale ``comp`` about its centroid, then shift by (dy, dx) px."""
    if angle == 0 and shift == (0, 0) and scale == 1:
        return comp.copy()
    cy, cx = ndi.center_of_mass(comp)
    to_origin = AffineTransform(translation=(-cx, -cy))
    rot = AffineTransform(rotation=np.deg2rad(angle), scale=scale)
    back = AffineTransform(translation=(cx + shift[1], cy + shift[0]))
    forward = AffineTransform(matrix=back.params @ rot.params @ to_origin.params)
    return warp(comp.astype(float), forward.inverse, order=0, preserve_range=True) > 0.5


def polygon_component(
    comp: np.ndarray, n_vertices: int, jitter: float, rng: np.random.Generator
) -> np.ndarray:
    """Redraw ``comp`` as a polygon of ``n_vertices`` contour points, each jittered by up to
    ``jitter`` times the component's bounding-box height and width."""
    filled = ndi.binary_fill_holes(comp)
    contours = measure.find_contours(np.pad(filled, 1).astype(float), 0.5)
    contour = max(contours, key=len) - 1
    seg = np.r_[0, np.cumsum(np.hypot(*np.diff(contour, axis=0).T))]
    at = np.linspace(0, seg[-1], n_vertices, endpoint=False)
    pts = np.stack([np.interp(at, seg, contour[:, 0]), np.interp(at, seg, contour[:, 1])], 1)
    rows, cols = np.nonzero(filled)
    box = np.array([np.ptp(rows) + 1, np.ptp(cols) + 1], float)
    pts = pts + rng.uniform(-1, 1, pts.shape) * jitter * box
    rr, cc = draw.polygon(pts[:, 0], pts[:, 1], shape=comp.shape)
    out = np.zeros_like(comp)
    out[rr, cc] = True
    return out


def corrupt_binary(
    binary: np.ndarray, kind: str, drawn: dict, c: int, rng: np.random.Generator, min_area: int
) -> np.ndarray:
    """Corrupt the binary mask of class ``c`` with one per-class ``kind`` and its drawn
    parameters (dilate, erode, ellipse, affine or polygon)."""
    h, w = binary.shape
    if kind == "dilate":
        r = drawn["radius"][c]
        return ndi.binary_dilation(binary, _disk(r)) if r > 0 else binary
    if kind == "erode":
        r = drawn["radius"][c]
        return ndi.binary_erosion(binary, _disk(r)) if r > 0 else binary
    if kind == "ellipse":
        s = drawn["scale"][c]
        return _per_component(binary, min_area, lambda comp: fitted_ellipse(comp, s))
    if kind == "affine":
        angle, ty, tx, scale = drawn["affine"][c]
        shift = (ty * h, tx * w)
        return _per_component(
            binary, min_area, lambda comp: affine_component(comp, angle, shift, scale)
        )
    if kind == "polygon":
        n, jit = drawn["vertices"][c], drawn["jitter"]
        return _per_component(binary, min_area, lambda comp: polygon_component(comp, n, jit, rng))
    raise ValueError(f"unknown per-class noise kind {kind!r}")
