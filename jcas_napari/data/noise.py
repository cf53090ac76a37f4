"""Label-noise models that corrupt clean class masks the way the literature does.

``corrupt(mask, kind, rng, **params) -> (noisy, info)`` corrupts one (H,W) uint8 mask.
``corrupt_sequence(masks, kind, rng, segment=(3, 6))`` shares each draw over segments of
consecutive frames (MS-TFAL). Every random choice comes from the ``rng`` passed in, so the
same seed gives the same output. The ignore index passes through unchanged.

Kinds (provenance in ``docs``/the reference note, section 3-4):

============  ===============================================================  =============
kind          what it does                                                     source
============  ===============================================================  =============
symmetric     i.i.d. pixel flips, rate ``rate`` spread evenly over classes     JCAS sym50
asymmetric    i.i.d. pixel flips through a non-uniform K x K matrix            JCAS asym50
ellipse       each part component replaced by its moment-fitted ellipse        JCAS ellipse
dilate        each part grown by a disk of radius r ~ U{a..b}                  MS-TFAL, SC
erode         each part shrunk by the same disk                                MS-TFAL, SC
affine        each part component rotated, shifted and scaled                  MS-TFAL
polygon       each component redrawn as a coarse polygon with jittered vertices MS-TFAL
markov        boundary random walk, i.i.d. flips, blur and threshold           Spatial Corr.
drop          whole part components deleted (missed annotation)               Rottmann 2022
swap          whole part components given another part's class (confusion)    cf. Rottmann
mix           per (segment, class) one of dilate/erode/affine/polygon          MS-TFAL
============  ===============================================================  =============

Morphological kinds never take background as a source class: each foreground class is
corrupted as a binary mask and pasted back in a seeded random order (later overwrite).

The models live in :mod:`~jcas_napari.data.noise_flip` (pixel flips),
:mod:`~jcas_napari.data.noise_shape` (per-component shape noise) and
:mod:`~jcas_napari.data.noise_markov` (boundary walk); this module holds the kinds, the
presets and the driver that draws parameters and applies them, and re-exports the models'
public names.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from jcas_napari import IGNORE_INDEX
from jcas_napari.data.metrics import per_class_dice
from jcas_napari.data.noise_flip import (
    ASYMMETRIC50,
    cyclic_matrix,
    flip_pixels,
    symmetric_matrix,
)
from jcas_napari.data.noise_markov import markov_binary
from jcas_napari.data.noise_shape import (
    affine_component,
    components,
    composite,
    corrupt_binary,
    fitted_ellipse,
    polygon_component,
)

__all__ = [
    "ASYMMETRIC50",
    "KINDS",
    "PRESETS",
    "NoiseInfo",
    "affine_component",
    "apply_params",
    "corrupt",
    "corrupt_sequence",
    "cyclic_matrix",
    "draw_params",
    "fitted_ellipse",
    "flip_pixels",
    "markov_binary",
    "noise_info",
    "polygon_component",
    "symmetric_matrix",
]


KINDS = (
    "none",
    "symmetric",
    "asymmetric",
    "ellipse",
    "dilate",
    "erode",
    "affine",
    "polygon",
    "markov",
    "drop",
    "swap",
    "mix",
)

# Named settings: kind, parameters, and the segment length range for sequences.
PRESETS: dict[str, tuple[str, dict, tuple[int, int]]] = {
    "clean": ("none", {}, (1, 1)),
    "symmetric50": ("symmetric", {"rate": 0.5}, (1, 1)),
    "asymmetric50": ("asymmetric", {}, (1, 1)),
    "ellipse": ("ellipse", {"scale": (1.0, 1.2)}, (1, 1)),
    "mix": ("mix", {"radius": (10, 12)}, (3, 6)),
    "markov": ("markov", {"steps": 60, "theta1": 0.8, "theta2": 0.05, "theta3": 0.2}, (1, 1)),
    "dilate": ("dilate", {"radius": (3, 6)}, (1, 1)),
    "erode": ("erode", {"radius": (3, 6)}, (1, 1)),
    "affine": ("affine", {}, (1, 1)),
    "polygon": ("polygon", {}, (1, 1)),
    "drop": ("drop", {"count": 1}, (1, 1)),
    "swap": ("swap", {"count": 1}, (1, 1)),
}


@dataclass
class NoiseInfo:
    """What :func:`corrupt` did to one mask.

    ``changed`` is the (H,W) bool map of pixels whose class differs from the clean mask;
    ``dice`` maps class -> Dice(noisy, clean) for classes in either mask; ``class_rate`` is
    MS-TFAL's per-class rate |#noisy - #clean| / (#clean + |diff|).
    """

    kind: str
    params: dict
    changed: np.ndarray = field(repr=False)
    disagreement: float
    dice: dict[int, float]
    class_rate: dict[int, float]

    def to_json(self) -> dict:
        """JSON-ready summary (without the changed-pixel map)."""
        return {
            "kind": self.kind,
            "params": _jsonable(self.params),
            "disagreement": self.disagreement,
            "dice": {str(k): v for k, v in self.dice.items()},
            "class_rate": {str(k): v for k, v in self.class_rate.items()},
        }


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


# ----------------------------------------------------------------------------- draw/apply


def _fg_classes(num_classes: int) -> list[int]:
    return list(range(1, num_classes))


def _uniform_int(rng: np.random.Generator, lo_hi) -> int:
    lo, hi = (lo_hi, lo_hi) if np.isscalar(lo_hi) else lo_hi
    return int(rng.integers(int(lo), int(hi) + 1))


def draw_params(kind: str, rng: np.random.Generator, num_classes: int, **p) -> dict:
    """Draw the parameters of one corruption (shared by all frames of a segment)."""
    fg = _fg_classes(num_classes)
    order = [int(c) for c in rng.permutation(fg)]  # drawn for every kind: keeps seeds stable
    if kind == "none":
        return {}
    if kind in ("symmetric", "asymmetric"):
        return _matrix_params(kind, num_classes, p)
    if kind == "mix":
        return _mix_params(rng, num_classes, fg, order, p)
    return _shape_params(kind, rng, fg, order, p)


def _matrix_params(kind: str, num_classes: int, p: dict) -> dict:
    """The transition matrix of a pixel-flip corruption."""
    if kind == "symmetric":
        rate = float(p.get("rate", 0.5))
        t = symmetric_matrix(num_classes, rate)
        if p.get("foreground_only"):
            t[0] = np.eye(num_classes)[0]
        return {"rate": rate, "matrix": t}
    if p.get("matrix") is not None:
        t = np.asarray(p["matrix"], float)
    elif "rate" in p or num_classes != 4:
        t = cyclic_matrix(num_classes, float(p.get("rate", 0.5)))
    else:
        t = ASYMMETRIC50.copy()
    if t.shape != (num_classes, num_classes) or not np.allclose(t.sum(1), 1):
        raise ValueError(f"asymmetric matrix must be {num_classes}x{num_classes}, rows sum 1")
    return {"matrix": t}


def _shape_params(kind: str, rng: np.random.Generator, fg, order: list[int], p: dict) -> dict:
    """Per-class parameters of a shape corruption (or markov, drop)."""
    if kind == "ellipse":
        lo, hi = p.get("scale", (1.0, 1.2))
        return {"scale": {c: float(rng.uniform(lo, hi)) for c in fg}, "order": order}
    if kind in ("dilate", "erode"):
        radius = {c: _uniform_int(rng, p.get("radius", (3, 6))) for c in fg}
        return {"radius": radius, "order": order}
    if kind == "affine":
        deg = float(p.get("degrees", 30))
        ty, tx = p.get("translate", (0.2, 0.0))  # fraction of H, W (MS-TFAL: vertical only)
        slo, shi = p.get("scale", (0.8, 1.2))
        affine = {
            c: (
                float(rng.uniform(-deg, deg)),
                float(rng.uniform(-ty, ty)),
                float(rng.uniform(-tx, tx)),
                float(rng.uniform(slo, shi)),
            )
            for c in fg
        }
        return {"affine": affine, "order": order}
    if kind == "polygon":
        vertices = {c: _uniform_int(rng, p.get("vertices", (4, 8))) for c in fg}
        return {"vertices": vertices, "jitter": float(p.get("jitter", 0.2)), "order": order}
    if kind == "markov":
        defaults = (("steps", 60), ("theta1", 0.8), ("theta2", 0.05), ("theta3", 0.2))
        return {k: p.get(k, d) for k, d in defaults}
    if kind in ("drop", "swap"):
        return {"count": int(p.get("count", 1))}
    raise ValueError(f"unknown noise kind {kind!r}; choose from {', '.join(KINDS)}")


def _mix_params(rng: np.random.Generator, num_classes: int, fg, order: list[int], p: dict):
    """For each class, one corruption drawn from ``probs`` and its own parameters."""
    probs = p.get("probs", {"dilate": 0.25, "erode": 0.25, "affine": 0.25, "polygon": 0.25})
    names = list(probs)
    weights = np.array([probs[n] for n in names], float)
    choice = {}
    for c in fg:
        sub = names[rng.choice(len(names), p=weights / weights.sum())]
        sub_p = {k: v for k, v in p.items() if k != "probs"}
        choice[c] = (sub, draw_params(sub, rng, num_classes, **sub_p))
    return {"choice": choice, "order": order}


def apply_params(
    mask: np.ndarray,
    kind: str,
    drawn: dict,
    rng: np.random.Generator,
    num_classes: int,
    ignore_index: int = IGNORE_INDEX,
    min_area: int = 20,
) -> np.ndarray:
    """Apply drawn parameters to one (H,W) uint8 mask; returns a new mask."""
    if kind == "none":
        return mask.copy()
    if kind in ("symmetric", "asymmetric"):
        return flip_pixels(mask, drawn["matrix"], rng, ignore_index)
    if kind == "markov":
        bins = {
            c: markov_binary(
                mask == c,
                rng,
                int(drawn["steps"]),
                float(drawn["theta1"]),
                float(drawn["theta2"]),
                float(drawn["theta3"]),
            )
            for c in _fg_classes(num_classes)
            if (mask == c).any()
        }
        return composite(mask, bins, rng.permutation(list(bins)).tolist(), ignore_index)
    if kind == "swap":
        return _swap_parts(mask, drawn["count"], rng, num_classes, min_area)
    if kind == "drop":
        out = mask.copy()
        comps = [comp for c in _fg_classes(num_classes) for comp in components(mask == c, min_area)]
        if comps and drawn["count"] > 0:
            for i in rng.choice(len(comps), size=min(drawn["count"], len(comps)), replace=False):
                out[comps[i]] = 0
        return out
    bins = {}
    for c in _fg_classes(num_classes):
        binary = mask == c
        if not binary.any():
            continue
        sub_kind, sub = drawn["choice"][c] if kind == "mix" else (kind, drawn)
        bins[c] = corrupt_binary(binary, sub_kind, sub, c, rng, min_area)
    return composite(mask, bins, drawn["order"], ignore_index)


def _swap_parts(mask, count: int, rng, num_classes: int, min_area: int) -> np.ndarray:
    """``count`` whole part components relabelled to another foreground class."""
    out = mask.copy()
    fg = list(_fg_classes(num_classes))
    comps = [(c, comp) for c in fg for comp in components(mask == c, min_area)]
    if comps and len(fg) > 1 and count > 0:
        for i in rng.choice(len(comps), size=min(count, len(comps)), replace=False):
            c, comp = comps[i]
            others = [d for d in fg if d != c]
            out[comp] = others[int(rng.integers(len(others)))]
    return out


def noise_info(
    clean: np.ndarray,
    noisy: np.ndarray,
    kind: str,
    params: dict,
    num_classes: int,
    ignore_index: int = IGNORE_INDEX,
) -> NoiseInfo:
    """Measure what a corruption did: changed pixels, disagreement, Dice and class rates."""
    valid = clean != ignore_index
    changed = (clean != noisy) & valid
    n_valid = max(int(valid.sum()), 1)
    c_counts = np.bincount(clean[valid], minlength=num_classes)[:num_classes]
    n_counts = np.bincount(noisy[valid], minlength=num_classes)[:num_classes]
    rate = {}
    for c in range(1, num_classes):
        diff = abs(int(n_counts[c]) - int(c_counts[c]))
        if c_counts[c] + diff > 0:
            rate[c] = diff / (int(c_counts[c]) + diff)
    return NoiseInfo(
        kind=kind,
        params=params,
        changed=changed,
        disagreement=float(changed.sum() / n_valid),
        dice=per_class_dice(noisy, clean, num_classes, ignore_index),
        class_rate=rate,
    )


def corrupt(
    mask: np.ndarray,
    kind: str,
    rng: np.random.Generator,
    *,
    num_classes: int = 4,
    ignore_index: int = IGNORE_INDEX,
    min_area: int = 20,
    **params,
) -> tuple[np.ndarray, NoiseInfo]:
    """Corrupt one (H,W) uint8 class mask; returns ``(noisy, info)``.

    ``kind`` is one of :data:`KINDS` or a name in :data:`PRESETS`; ``params`` override the
    kind's defaults (see :func:`draw_params`).
    """
    kind, params = _resolve(kind, params)
    drawn = draw_params(kind, rng, num_classes, **params)
    noisy = apply_params(mask, kind, drawn, rng, num_classes, ignore_index, min_area)
    return noisy, noise_info(mask, noisy, kind, drawn, num_classes, ignore_index)


def corrupt_sequence(
    masks: Iterable[np.ndarray],
    kind: str,
    rng: np.random.Generator,
    *,
    segment: tuple[int, int] | None = None,
    num_classes: int = 4,
    ignore_index: int = IGNORE_INDEX,
    min_area: int = 20,
    **params,
) -> Iterator[tuple[np.ndarray, NoiseInfo]]:
    """Corrupt consecutive frames, drawing parameters once per segment of frames.

    Segment lengths are drawn from ``segment`` (inclusive; default: the preset's, else 1).
    ``info.params["segment"]`` numbers the segments.
    """
    preset_segment = PRESETS[kind][2] if kind in PRESETS else (1, 1)
    seg_lo, seg_hi = segment or preset_segment
    kind, params = _resolve(kind, params)
    left, seg_id, drawn = 0, -1, {}
    for mask in masks:
        if left == 0:
            left = int(rng.integers(seg_lo, seg_hi + 1))
            seg_id += 1
            drawn = draw_params(kind, rng, num_classes, **params)
        left -= 1
        noisy = apply_params(mask, kind, drawn, rng, num_classes, ignore_index, min_area)
        info = noise_info(
            mask, noisy, kind, {**drawn, "segment": seg_id}, num_classes, ignore_index
        )
        yield noisy, info


def _resolve(kind: str, params: dict) -> tuple[str, dict]:
    if kind in PRESETS:
        base_kind, base, _ = PRESETS[kind]
        return base_kind, {**base, **params}
    if kind not in KINDS:
        names = ", ".join(sorted(set(KINDS) | set(PRESETS)))
        raise ValueError(f"unknown noise kind or preset {kind!r}; choose from {names}")
    return kind, params
