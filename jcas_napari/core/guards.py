"""Do no harm, before any change is proposed: the checks a model must pass.

- ``model_guard``: the checkpoint's own held-out check (``core.validate``): a model that
  predicts held-out noisy labels no better than the class frequencies proposes nothing.
- ``check_on_data``: the same question asked on the frames to clean, plus what those
  frames say about their own noise: T_C by the confident joint, per band of distance to
  the drawn borders, and the part -> part changes the model's verdicts cannot support.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from jcas_napari.core.propose import (
    band_transitions,
    boundary_bands,
    disputed_parts,
    part_votes,
)
from jcas_napari.core.transitions import confident_joint_estimate
from jcas_napari.core.validate import guard_scores, noisy_posterior_flat
from jcas_napari.data.fingerprint import fingerprint

if TYPE_CHECKING:
    from jcas_napari.core.clean import Cleaner


def model_guard(ckpt: dict) -> str | None:
    """Why this checkpoint must not propose changes, or None when its held-out check passed.

    The check (``core.validate``): the held-out noisy labels must be predicted better than
    by the class frequencies alone. A checkpoint without the check (an older format)
    passes here; ``clean`` still checks it on the frames it cleans.
    """
    guard = ckpt.get("guard") or {}
    gain = guard.get("val_gain")
    if gain is None or not np.isfinite(gain):
        return None
    if gain <= 0:
        return (
            f"the model predicts held-out labels no better than the class frequencies "
            f"do (NLL {guard['val_nll']:.3f} vs {guard['prior_nll']:.3f}): train it "
            "longer, on more frames, or from the shipped model"
        )
    return None


def guard_transition(ckpt: dict, t_anchor: np.ndarray) -> np.ndarray:
    """The T [K,K] that maps a cleaner's q to the noisy posterior the checkpoint's
    held-out guard scored (``core.epoch_end``), so that the check on the frames to clean
    asks the same question: the learned T_C after stage 2 of a method that learns T; for
    CE, ``t_anchor``, which its q was backward-corrected with; else I (stage 1 scores the
    network's output as it is).

    Not the anchor estimate for every method: its rows without anchors are the identity,
    under which a label the model calls another class has probability 0, and a guard on
    such a T stopped a good model (benchmark, asymmetric50 family b, seed 0).
    """
    stage = ckpt.get("stage")
    if ckpt.get("method", "jcas") == "ce" or stage is None:  # older checkpoints: as before
        return np.asarray(t_anchor, np.float64)
    if int(stage) == 2 and "t_c" in ckpt:
        return np.asarray(ckpt["t_c"], np.float64)
    return np.eye(len(t_anchor))


def with_probs(dataset: Sequence, cleaner: Cleaner, order: list[int], batch_size: int):
    """(index, sample, q) per frame of ``order``, reading and predicting a batch at a time."""
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        samples = [dataset[i] for i in batch]
        yield from zip(batch, samples, cleaner.probabilities([s.image for s in samples]))


MIN_TRAINED_FRAMES = 4


def trained_frames(dataset: Sequence, cleaner: Cleaner, order: Sequence[int]) -> list[int]:
    """The frames of ``order`` whose ids the model recorded as trained on (``trained_on``:
    id -> content ``fingerprint``), when there are at least ``MIN_TRAINED_FRAMES`` of them and
    ``RuleSettings.t_from_trained``; else []. ``check_on_data`` then checks the content
    of those it looks at.

    Why: the confident joint counts as label noise every confident disagreement between
    the model and the labels. On frames the model trained on, a disagreement is a label it
    could not fit; on sequences it never saw, its own errors of transfer count as well
    (measured on development data: T from the held-out sequences alone was further from
    the true T than from the trained ones on all five sets checked, by 1.2-4x, and on one
    set of clean masks called 73% of the clasper labels wrong)."""
    names = getattr(dataset, "ids", None)
    if not (cleaner.settings.t_from_trained and cleaner.trained_on and names):
        return []
    kept = [i for i in order if str(names[i]) in cleaner.trained_on]
    return kept if len(kept) >= MIN_TRAINED_FRAMES else []


def evenly(order: Sequence[int], frames: int) -> list[int]:
    """Up to ``frames`` of ``order``, evenly spaced."""
    if not order:
        return []
    return list(dict.fromkeys(order[int(j)] for j in np.linspace(0, len(order) - 1, frames)))


def frames_note(frames: int, in_sample: bool) -> str:
    """One sentence for the report and the GUI: the frames T was estimated on."""
    if not frames:
        return ""
    where = "that the model trained on" if in_sample else "of these"
    return f"T estimated on {frames} frames {where}."


@dataclass
class DataCheck:
    """What ``check_on_data`` found on the frames to clean; all None without pixels."""

    reason: str | None = None  # why the model must not propose here
    t_c: np.ndarray | None = None  # [K,K] confident joint of these frames
    t_bands: np.ndarray | None = None  # [B,K,K] the same per distance band
    blocked: np.ndarray | None = None  # [K,K] bool, part -> part changes not supported
    frames: int = 0  # how many frames were looked at
    in_sample: bool = False  # whether the model trained on them (``trained_frames``)


def frame_evidence(sample, q: np.ndarray, cleaner: Cleaner, digest: bool) -> dict:
    """What one frame contributes to ``check_on_data``: q [N,K] and labels [N] of every
    4th pixel in each direction, their distance bands, the part votes, and (``digest``:
    only for frames to match against ``trained_on``) its content fingerprint."""
    lab = sample.mask[::4, ::4].ravel()
    keep = lab != cleaner.ignore_index
    band = boundary_bands(sample.mask, cleaner.scale(sample.mask))
    votes = part_votes(q, sample.mask, band) if cleaner.settings.part_check else []
    return {
        "q": q[:, ::4, ::4].reshape(len(q), -1).T[keep],
        "labels": lab[keep].astype(np.intp),
        "bands": band[::4, ::4].ravel()[keep],
        "votes": votes,
        "digest": fingerprint(sample.image) if digest else None,
        "id": str(sample.id),
    }


def check_on_data(
    dataset: Sequence, cleaner: Cleaner, order: Sequence[int], frames: int = 16
) -> DataCheck:
    """Look at up to ``frames`` of the frames to clean (evenly spaced) before cleaning.

    Finds whether the model must not propose here at all (the guard), T_C estimated on
    these frames by the confident joint, the same per band of distance to the label border
    (``RuleSettings.boundary_bands``), and the part -> part changes the model's verdicts
    on the drawn parts cannot support (``propose.disputed_parts``). The guard looks at
    frames spread over all of ``order``: for a model that never saw them it is an honest
    test of transfer. T and the part check say how noisy **these** masks look (clean masks
    give T near I); where at least 4 of them are frames the model trained on, same id and
    same content, they are estimated on those alone (``trained_frames``).
    """
    order = list(order)
    everywhere = evenly(order, frames)
    fitted = evenly(trained_frames(dataset, cleaner, order), frames)
    looked = list(dict.fromkeys(everywhere + fitted))
    seen = {
        i: frame_evidence(s, q, cleaner, digest=i in fitted)
        for i, s, q in with_probs(dataset, cleaner, looked, 4)
    }
    in_sample = bool(fitted) and all(
        cleaner.trained_on.get(seen[i]["id"]) == seen[i]["digest"] for i in fitted
    )
    source = fitted if in_sample else everywhere
    k = len(cleaner.class_names)
    guard = _joined(seen, everywhere)
    g = guard_scores(
        noisy_posterior_flat(guard["q"], cleaner.t_guard), guard["labels"], k, cleaner.noisy_prior
    )
    found = DataCheck(frames=len(source), in_sample=in_sample)
    ev = _joined(seen, source)
    if len(ev["labels"]):
        found.t_c = confident_joint_estimate(ev["q"], ev["labels"])
        if cleaner.settings.boundary_bands:
            inner = cleaner.settings.border_from_inner
            found.t_bands = band_transitions(ev["q"], ev["labels"], ev["bands"], found.t_c, inner)
        if cleaner.settings.part_check:
            found.blocked = disputed_parts(ev["votes"], k)
    if np.isfinite(g["val_gain"]) and g["val_gain"] <= 0:
        found.reason = (
            f"on these frames the model predicts the given labels no better than the "
            f"class frequencies do (NLL {g['val_nll']:.3f} vs {g['prior_nll']:.3f}): "
            "it does not know these images well enough; fine-tune it on this data, or "
            "train it longer or on more frames"
        )
    return found


def _joined(seen: dict[int, dict], frames: list[int]) -> dict:
    """The evidence of ``frames`` (``frame_evidence``) as one set of pixels."""
    parts = [seen[i] for i in frames]
    out = {key: np.concatenate([p[key] for p in parts]) for key in ("q", "labels", "bands")}
    out["votes"] = [v for p in parts for v in p["votes"]]
    return out
