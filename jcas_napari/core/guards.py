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


def trained_frames(dataset: Sequence, cleaner: Cleaner, order: Sequence[int]) -> list[int] | None:
    """The frames of ``order`` the model trained on, when there are at least
    ``MIN_TRAINED_FRAMES`` of them and ``RuleSettings.t_from_trained``; else None (use all).

    Why: the confident joint counts as label noise every confident disagreement between
    the model and the labels. On frames the model trained on, a disagreement is a label it
    could not fit; on sequences it never saw, its own errors of transfer count as well
    (measured on development data: T from the held-out sequences alone was further from
    the true T than from the trained ones on all five sets checked, by 1.2-4x, and on one
    set of clean masks called 73% of the clasper labels wrong).
    A model that trained on none of these frames (another dataset, or cross-fitting)
    looks at them all. Frames are matched by id (``Dataset.ids``)."""
    names = getattr(dataset, "ids", None)
    if not (cleaner.settings.t_from_trained and cleaner.trained_on and names):
        return None
    kept = [i for i in order if str(names[i]) in cleaner.trained_on]
    return kept if len(kept) >= MIN_TRAINED_FRAMES else None


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


def check_on_data(
    dataset: Sequence, cleaner: Cleaner, order: Sequence[int], frames: int = 16
) -> DataCheck:
    """Look at up to ``frames`` of the frames to clean (evenly spaced) before cleaning.

    Finds whether the model must not propose here at all (the guard), T_C estimated on
    these frames by the confident joint, the same per band of distance to the label border
    (``RuleSettings.boundary_bands``), and the part -> part changes the model's verdicts
    on the drawn parts cannot support (``propose.disputed_parts``). For a model that never
    saw these frames the guard is an honest test of transfer, and T says how noisy
    **these** masks look, not the masks the model was trained on: clean masks give T near I.
    Where the model trained on some of these frames, only those are looked at
    (``trained_frames``).
    """
    trained = trained_frames(dataset, cleaner, order)
    in_sample, order = trained is not None, trained or list(order)
    pick = [order[int(j)] for j in np.linspace(0, len(order) - 1, min(frames, len(order)))]
    qs, labels, bands, votes = [], [], [], []
    for _, s, q in with_probs(dataset, cleaner, list(dict.fromkeys(pick)), 4):
        lab = s.mask[::4, ::4].ravel()
        keep = lab != cleaner.ignore_index
        qs.append(q[:, ::4, ::4].reshape(len(q), -1).T[keep])
        labels.append(lab[keep].astype(np.intp))
        band = boundary_bands(s.mask, cleaner.scale(s.mask))
        bands.append(band[::4, ::4].ravel()[keep])
        if cleaner.settings.part_check:
            votes += part_votes(q, s.mask, band)
    q, lab, band = np.concatenate(qs), np.concatenate(labels), np.concatenate(bands)
    k = len(cleaner.class_names)
    g = guard_scores(noisy_posterior_flat(q, cleaner.t_guard), lab, k, cleaner.noisy_prior)
    found = DataCheck(frames=len(set(pick)), in_sample=in_sample)
    if len(lab):
        found.t_c = confident_joint_estimate(q, lab)
        if cleaner.settings.boundary_bands:
            inner = cleaner.settings.border_from_inner
            found.t_bands = band_transitions(q, lab, band, found.t_c, inner)
        if cleaner.settings.part_check:
            found.blocked = disputed_parts(votes, k)
    if np.isfinite(g["val_gain"]) and g["val_gain"] <= 0:
        found.reason = (
            f"on these frames the model predicts the given labels no better than the "
            f"class frequencies do (NLL {g['val_nll']:.3f} vs {g['prior_nll']:.3f}): "
            "it does not know these images well enough; fine-tune it on this data, or "
            "train it longer or on more frames"
        )
    return found
