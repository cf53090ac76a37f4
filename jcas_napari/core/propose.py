"""The proposal rule: which pixels of a given mask to change, to what, and in what order.

A model gives q [K,H,W], its estimate of the **clean** class of each pixel, and T_C [K,K],
its estimate of how labels get corrupted (``T[i, j] = P(noisy j | clean i)``). Bayes' rule
gives the posterior of the clean class given the label the annotator drew:

    P(clean = j | given = l, x) = q_j T[j, l] / sum_k q_k T[k, l]

The label itself is evidence: where T says labels of class l are rarely wrong
(T[j, l] << T[l, l]), only a very sure model overturns it. On clean data T is close to
the identity and nothing changes; under heavy noise the label counts for little.

Where masks are drawn by hand, errors sit near the drawn borders. So T may be given per
band of distance to the given mask's nearest class border (``boundary_bands``), T [B,K,K]:
a pixel's label is weighed by how often labels at *that* distance are wrong.

A pixel is a candidate when its most probable clean class j differs from the label and
P(clean = j | given, x) >= ``min_posterior`` (the label is more likely wrong than right).
With ``q_neighbours`` (the mean q of the neighbouring video frames) the posterior is the
smaller of the two: a change needs support in the frame and in its neighbours.
A drawn gap is kept (``RuleSettings.drawn_gaps``): the model's logits come at an eighth of
its input resolution and are interpolated, so a gap in the drawing of a part narrower
than that cell (open jaws, two shafts side by side) is below what it can see; where it
calls the gap part c, that is the interpolation, not evidence. In masks drawn as regions
(``is_drawn``; not under pixel flips), a background pixel inside a gap of part c
narrower than about 8 model input pixels never becomes c.
Candidates are grouped into regions per target class, after joining fragments closer than
``merge_radius``; regions under ``min_area`` are dropped. With ``join_posterior`` (a
hysteresis, as in edge detection) pixels at P >= join_posterior also join regions, and a
region is kept only when its mean posterior and at least one of its pixels reach
``min_posterior``: a sure core carries the less sure pixels around it that the per-pixel
test would cut off (off by default: on the benchmark it cost a weak model under 50% flips
more than it gained anywhere; docs/method.md). Each region scores the mean
posterior of its target class, the probability that accepting it is right. Regions are
accepted best first while the changed pixels stay within the frame's share of the noise
rate that T_C and the class prior imply (``max_changed``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from jcas_napari.core.transitions import confident_joint_estimate


@dataclass
class Region:
    """One connected region of proposed changes."""

    label: int  # its id in the regions map; 1 is the best-scored region of the frame
    area: int
    score: float  # mean P(clean = to_class | given label, image) over the region
    from_class: int  # the most common given class in the region
    to_class: int  # the proposed class
    bbox: tuple[int, int, int, int]  # y0, x0, y1, x1 (exclusive)


@dataclass
class RuleSettings:
    """Knobs of the proposal rule (defaults: see docs/method.md; not tuned on benchmarks)."""

    min_posterior: float = 0.5
    min_area: int | None = None  # None: frame pixels / 4000, at least 9 (20 px at 256x320)
    merge_radius: int = 2
    temporal: bool = True
    boundary_bands: bool = True  # estimate T per band of distance to the label border
    border_from_inner: bool = True  # band 0 row: the noisier of overall's and band 1's
    t_from_trained: bool = True  # T from the frames the model trained on, where 4+ are here
    part_check: bool = True  # no part -> part changes the model's verdicts dispute
    drawn_gaps: float = 4.0  # keep drawn gaps up to ~2x this many model input px (0: off)
    join_posterior: float | None = None  # hysteresis: pixels this sure join regions (None: off)


@dataclass
class Proposal:
    """The rule's output for one frame; maps are (H,W)."""

    proposed: np.ndarray  # uint8: the given mask with accepted regions replaced
    regions: np.ndarray  # int32 region ids, 0 = unchanged, ranked by score
    info: list[Region] = field(default_factory=list)
    p_wrong: np.ndarray | None = None  # float32 P(given label is wrong | image)


BAND_STEPS = (2, 4, 8, 16)  # band edges in the model's input pixels
NUM_BANDS = len(BAND_STEPS) + 1


def band_names() -> list[str]:
    """What each distance band covers, in the model's input pixels (for display)."""
    edges = (0, *BAND_STEPS)
    names = [f"{lo}-{hi} input px from a drawn border" for lo, hi in zip(edges, edges[1:])]
    return names + [f"{BAND_STEPS[-1]}+ input px from a drawn border"]


def boundary_bands(given: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Band id [H,W] (int64, 0 = at a class border .. 4 = far inside) of each pixel of a
    given mask [H,W], by its distance to the nearest pixel of another value. The edges are
    2, 4, 8 and 16 input pixels of the model, ``scale`` frame pixels each (4, 8, 16, 32 px
    for the ``small`` model on 256x320 frames): geometric, as a band's width should grow
    with its distance from the drawn border."""
    dist = np.zeros(given.shape, np.float32)
    for c in np.unique(given):
        sel = given == c
        dist[sel] = ndi.distance_transform_edt(sel)[sel]
    return np.searchsorted(np.array(BAND_STEPS, np.float32) * scale, dist, side="right")


def band_transitions(
    q: np.ndarray, labels: np.ndarray, bands: np.ndarray, overall: np.ndarray, inner: bool = True
) -> np.ndarray:
    """T [B,K,K] per distance band from clean-class probabilities q [N,K], given labels [N]
    and band ids [N] (``boundary_bands``): the confident joint of each band's pixels as a
    data set of its own (a class with too few pixels in a band keeps the identity row
    there: without evidence, its labels are taken as right).

    Band 0, within two input pixels of a drawn border, does not use its own pixels: there
    the model cannot place a border better than the annotator, and its disagreements are
    its own error as often as the label's (on clean masks band 0 alone looks 15-45% noisy
    to the shipped model, measured on development data). Each row i of band 0 is instead
    the noisier (smaller T[i, i]) of two lower bounds on its noise: ``overall`` [K,K], the
    confident joint of all pixels (a label at a border is no safer than the average one),
    and, with ``inner``, band 1's row (a drawing error that reaches 2-4 input px from the
    drawn border crosses the 0-2 px next to it). Without ``inner`` band 0 is ``overall``.
    """
    own = [confident_joint_estimate(q[bands == b], labels[bands == b]) for b in range(1, NUM_BANDS)]
    border = np.asarray(overall, np.float64)
    if inner:
        noisier = np.diag(own[0]) < np.diag(border)
        border = np.where(noisier[:, None], own[0], border)
    return np.stack([border, *own])


def part_votes(q: np.ndarray, given: np.ndarray, bands: np.ndarray) -> list[tuple[int, int]]:
    """(drawn part, the model's vote) for each connected component of each part drawn in
    ``given`` [H,W] that has pixels away from its borders (band >= 1 of ``bands`` [H,W]);
    the vote is the class most of those pixels have as argmax of q [K,H,W]."""
    k = q.shape[0]
    arg = q.argmax(0)
    inner = bands >= 1
    out = []
    for part in range(1, k):
        # Ignored pixels (>= K) join the part's components: a part crossed by an ignored
        # stripe is one drawing, one vote.
        comp, _ = ndi.label((given == part) | (given >= k))
        comp[given != part] = 0
        for c, sl in enumerate(ndi.find_objects(comp), start=1):
            if sl is None:
                continue
            sel = (comp[sl] == c) & inner[sl]
            if sel.any():
                out.append((part, int(np.bincount(arg[sl][sel], minlength=k).argmax())))
    return out


def disputed_parts(votes: list[tuple[int, int]], k: int, min_parts: int = 3) -> np.ndarray:
    """[K,K] bool: changes from drawn part l to part m that the data cannot support.

    ``votes`` (``part_votes``) are the model's verdicts on the drawn components. Where it
    calls more of the components drawn as part l part m than part l, it disputes what part
    l *is*, not where its borders are. Which part is which cannot be learned from one
    labelling when most of a part's drawings are said to be another part: noise that swaps
    whole parts is then indistinguishable from a model that confuses the two. The label is
    trusted and (l, m) is blocked. Components are counted, not pixels, so that one large
    part drawn with a small part's class does not outvote all of that class's drawings.
    Background (class 0) is left to the guard and to T: shape noise can make most of a
    thin part's drawing background. Parts with under ``min_parts`` components are not judged.
    """
    out = np.zeros((k, k), bool)
    for part in range(1, k):
        got = np.bincount([v for p, v in votes if p == part], minlength=k)[:k]
        if got.sum() >= min_parts:
            out[part, 1:] = got[1:] > got[part]
    return out


def label_posterior(
    q: np.ndarray, given: np.ndarray, t: np.ndarray, bands: np.ndarray | None = None
) -> np.ndarray:
    """P(clean = j | given label, image) [K,H,W] from q [K,H,W], labels [H,W] and T: one
    [K,K], or [B,K,K] with each pixel's band id in ``bands`` [H,W].

    Ignored pixels (labels outside 0..K-1) get q itself.
    """
    k = q.shape[0]
    t = np.asarray(t, np.float32)
    ok = given < k
    lab = np.where(ok, given, 0).astype(np.intp)
    if t.ndim == 3:
        lik = np.moveaxis(t[bands, :, lab], -1, 0)  # T_band[j, given], [K,H,W]
    else:
        lik = t[:, lab]  # [K,H,W]: T[j, given]
    post = q * lik
    post /= np.maximum(post.sum(0, keepdims=True), 1e-12)
    return np.where(ok[None], post, q).astype(np.float32)


def is_drawn(given: np.ndarray) -> bool:
    """Whether a mask [H,W] is drawn as regions, not pixel noise: most of its pixels have a
    uniform 3x3 neighbourhood (about 0.95 for drawn masks, shape noise included, and 0.002
    under 50% pixel flips, on development data)."""
    return bool((ndi.maximum_filter(given, 3) == ndi.minimum_filter(given, 3)).mean() >= 0.5)


def drawn_gaps(
    given: np.ndarray, k: int, radius: int, parts: Iterable[int] | None = None
) -> np.ndarray:
    """[K,H,W] bool: the background pixels of ``given`` [H,W] in a gap of the drawing of
    part c narrower than about 2 ``radius`` px (what a closing with a disk of that radius
    fills), for each part c >= 1 of ``parts`` (default: all); other rows are all False.

    The closing is computed with two distance transforms (a dilation is "within r of the
    part", its erosion "more than r from anything outside it"), exact for a disk and
    bounded in memory on large frames, over the part's bounding box grown by 2r + 1.
    """
    out = np.zeros((k, *given.shape), bool)
    bg = given == 0
    grow = 2 * radius + 1
    for c in sorted({int(c) for c in (range(1, k) if parts is None else parts)} - {0}):
        box = ndi.find_objects((given == c).astype(np.uint8))
        if not box:
            continue
        ys, xs = box[0]
        y0, x0 = max(ys.start - grow, 0), max(xs.start - grow, 0)
        # Padded by ``grow`` beyond the frame too, so that its border is not a wall.
        part = np.pad(given[y0 : ys.stop + grow, x0 : xs.stop + grow] == c, grow)
        near = ndi.distance_transform_edt(~part) <= radius
        closed = ndi.distance_transform_edt(near) > radius
        h, w = part.shape[0] - 2 * grow, part.shape[1] - 2 * grow
        out[c, y0 : y0 + h, x0 : x0 + w] = closed[grow:-grow, grow:-grow]
    return out & bg[None]


def default_min_area(shape: tuple[int, int]) -> int:
    return max(9, int(round(shape[0] * shape[1] / 4000)))


def _regions_of(cand: np.ndarray, target: np.ndarray, k: int, radius: int) -> list[np.ndarray]:
    """Boolean masks of candidate regions, one target class each, fragments joined."""
    out = []
    struct = ndi.generate_binary_structure(2, 2)
    for c in range(k):
        sel = cand & (target == c)
        if not sel.any():
            continue
        joined = ndi.binary_dilation(sel, struct, iterations=radius) if radius > 0 else sel
        comp, _ = ndi.label(joined, struct)
        comp = np.where(sel, comp, 0)
        for lab, sl in enumerate(ndi.find_objects(comp), start=1):
            if sl is not None:
                m = np.zeros(sel.shape, bool)
                m[sl] = comp[sl] == lab
                out.append(m)
    return out


def propose(
    q: np.ndarray,
    given: np.ndarray,
    t: np.ndarray,
    *,
    max_changed: int | None = None,
    settings: RuleSettings | None = None,
    q_neighbours: np.ndarray | None = None,
    bands: np.ndarray | None = None,
    blocked: np.ndarray | None = None,
    scale: float = 1.0,
) -> Proposal:
    """Apply the rule to one frame: q [K,H,W] clean-class probabilities, given [H,W] uint8
    (values >= K are ignored pixels and never change), T [K,K], or per band [B,K,K] with
    the band ids [H,W] of ``boundary_bands(given)`` in ``bands``; ``scale``: frame pixels
    per model input pixel."""
    s = settings or RuleSettings()
    k = q.shape[0]
    post = label_posterior(q, given, t, bands)
    if q_neighbours is not None and s.temporal:
        post = np.minimum(post, label_posterior(q_neighbours, given, t, bands))
    valid = given < k
    target = post.argmax(0)
    p_target = np.take_along_axis(post, target[None], 0)[0]
    lab = np.where(valid, given, 0).astype(np.intp)
    p_wrong = np.where(valid, 1 - np.take_along_axis(post, lab[None], 0)[0], 0)
    low = s.min_posterior if s.join_posterior is None else min(s.join_posterior, s.min_posterior)
    cand = valid & (target != given) & (p_target >= low)
    if blocked is not None:
        cand &= ~blocked[lab, target]
    radius = int(round(s.drawn_gaps * scale))
    fills = np.unique(target[cand & (given == 0)])  # parts that candidates would grow
    if radius > 0 and fills.size and is_drawn(given):
        gaps = drawn_gaps(given, k, radius, fills)
        cand &= ~np.take_along_axis(gaps, target[None], 0)[0]
    min_area = s.min_area if s.min_area is not None else default_min_area(given.shape)
    scored = []
    for m in _regions_of(cand, target, k, s.merge_radius):
        vals = p_target[m]
        score = float(vals.mean())
        if vals.size >= min_area and score >= s.min_posterior and vals.max() >= s.min_posterior:
            scored.append((score, vals.size, m))
    scored.sort(key=lambda r: (-r[0], -r[1]))
    budget = np.inf if max_changed is None else max_changed
    proposed, regions, info = given.copy(), np.zeros(given.shape, np.int32), []
    for score, area, m in scored:
        if area > budget:
            continue
        budget -= area
        lab_id = len(info) + 1
        to = int(target[m][0])
        ys, xs = np.nonzero(m)
        box = (int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1)
        info.append(Region(lab_id, area, score, int(np.bincount(given[m]).argmax()), to, box))
        regions[m] = lab_id
        proposed[m] = to
    return Proposal(proposed.astype(np.uint8), regions, info, p_wrong.astype(np.float32))
