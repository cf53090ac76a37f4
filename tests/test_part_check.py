"""The part check of the proposal rule (issue 10, do no harm): a model that calls most of
the parts drawn as one part another part is not allowed to relabel that part."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from jcas_napari.batch import rule_lines
from jcas_napari.core import pipeline
from jcas_napari.core.clean import Cleaner, clean
from jcas_napari.core.propose import (
    RuleSettings,
    boundary_bands,
    disputed_parts,
    part_votes,
    propose,
)
from jcas_napari.data.io import open_dataset
from jcas_napari.data.make import make_dataset
from tests.test_proposals import random_checkpoint

BG, SHAFT, WRIST, CLASPER = range(4)


def one_hot(mask: np.ndarray, k: int = 4, sure: float | np.ndarray = 0.9) -> np.ndarray:
    """q [K,H,W]: ``sure`` (a number or [H,W]) on the mask's class, the rest spread evenly."""
    sure = np.broadcast_to(np.asarray(sure, np.float32), mask.shape)
    q = np.repeat(((1 - sure) / (k - 1))[None], k, 0)
    np.put_along_axis(q, mask[None].astype(np.intp), sure[None], 0)
    return q


def test_votes_are_per_drawn_component_and_ignore_parts_without_an_inside():
    given = np.zeros((64, 80), np.uint8)
    given[5:25, 5:25] = WRIST  # a solid wrist
    given[35:55, 5:25] = WRIST  # a second one
    given[5:25, 40:42] = WRIST  # 2 px wide: all of it at a border, no vote
    given[35:55, 40:60] = CLASPER
    model = given.copy()
    model[35:55, 5:25] = CLASPER  # the model calls the second wrist a clasper
    votes = part_votes(one_hot(model), given, boundary_bands(given))
    assert sorted(votes) == [(WRIST, WRIST), (WRIST, CLASPER), (CLASPER, CLASPER)]


def test_an_ignored_stripe_does_not_split_a_drawing_into_two_votes():
    given = np.zeros((64, 80), np.uint8)
    given[5:45, 5:25] = WRIST
    given[24:26, 5:25] = 255  # an ignored stripe across the wrist
    votes = part_votes(one_hot(np.where(given == 255, 0, given)), given, boundary_bands(given))
    assert votes == [(WRIST, WRIST)]


def test_a_part_mostly_called_another_part_is_blocked_towards_it_only():
    votes = [(WRIST, CLASPER)] * 3 + [(WRIST, WRIST)] * 2 + [(CLASPER, BG)] * 5
    votes += [(CLASPER, CLASPER)] * 4 + [(SHAFT, SHAFT)] * 6 + [(SHAFT, WRIST)] * 2
    blocked = disputed_parts(votes, 4)
    # Wrist -> clasper: 3 of 5 wrists called clasper. Clasper -> background is left to T
    # (shape noise can make most of a thin part's drawing background); a swapped minority
    # of shafts stays correctable.
    assert [tuple(map(int, p)) for p in np.argwhere(blocked)] == [(WRIST, CLASPER)]
    # Too few drawings to judge a part: nothing blocked.
    assert not disputed_parts([(WRIST, CLASPER)] * 2, 4).any()


def test_blocked_changes_are_never_proposed_and_the_rest_are():
    given = np.zeros((64, 80), np.uint8)
    given[5:25, 5:25] = WRIST
    given[35:55, 40:60] = SHAFT
    model = given.copy()
    model[5:25, 5:25] = CLASPER
    model[35:55, 40:60] = BG
    t = np.full((4, 4), 0.1) + 0.6 * np.eye(4)
    q = one_hot(model, sure=0.97)
    free = propose(q, given, t, settings=RuleSettings(temporal=False))
    assert (free.proposed[5:25, 5:25] == CLASPER).all()
    blocked = np.zeros((4, 4), bool)
    blocked[WRIST, CLASPER] = True
    kept = propose(q, given, t, settings=RuleSettings(temporal=False), blocked=blocked)
    assert (kept.proposed[5:25, 5:25] == WRIST).all()
    assert (kept.proposed[35:55, 40:60] == BG).all()  # other changes still made


def confused_model(ds) -> dict:
    """q per frame (by image bytes) of a model that is sure and right everywhere except
    that it calls every wrist a clasper (a model that never learned the wrist)."""
    q, rng = {}, np.random.default_rng(0)
    for i in range(len(ds)):
        model = np.where(ds[i].mask == WRIST, CLASPER, ds[i].mask)
        sure = rng.uniform(0.9, 0.99, model.shape)  # more or less sure, as a real model is
        q[hashlib.md5(ds[i].image.tobytes()).hexdigest()] = one_hot(model, sure=sure)
    return q


@pytest.fixture(scope="module")
def confused(tmp_path_factory):
    """Clean masks, and the confused model's q."""
    root = tmp_path_factory.mktemp("part") / "ds"
    make_dataset(root, sequences=2, frames=4, size=(128, 160), noise="clean", seed=9)
    ds = open_dataset(root)
    return ds, confused_model(ds)


def cleaner_for(q: dict, settings: RuleSettings | None = None) -> Cleaner:
    ckpt = random_checkpoint()
    ckpt["t_c_anchor"] = np.full((4, 4), 0.05) + 0.8 * np.eye(4)  # held out: 15% noise
    cleaner = Cleaner(ckpt, 4, "cpu", settings)
    cleaner.class_names = ["background", "shaft", "wrist", "clasper"]
    cleaner.probabilities = lambda ims: [q[hashlib.md5(im.tobytes()).hexdigest()] for im in ims]
    return cleaner


def run(ds, q, settings=None):
    cleaner = cleaner_for(q, settings)
    notes, used = [], {}
    results = list(pipeline.clean_models(ds, [(cleaner, None)], notes=notes, used=used))
    wrist = sum(int((ds[r.index].mask == WRIST).sum()) for r in results)
    lost = sum(int(((ds[r.index].mask == WRIST) & (r.proposed != WRIST)).sum()) for r in results)
    return cleaner, notes, used, lost / wrist


def test_a_model_that_confuses_two_parts_leaves_them_alone_and_says_so(confused):
    ds, q = confused
    # Without the check the confused model passes the guard and relabels wrists wholesale.
    cleaner, notes, _, lost = run(ds, q, RuleSettings(part_check=False))
    assert cleaner.weak_reason is None and not notes
    assert lost > 0.1  # 22% of the wrist pixels, up to the change cap
    cleaner, notes, used, lost = run(ds, q)
    assert cleaner.blocked_pairs() == [("wrist", "clasper")]
    assert lost == 0.0
    assert notes == [
        "the model: no wrist -> clasper changes: it calls more of the parts drawn as wrist "
        "clasper than wrist, so it does not tell them apart on these frames"
    ]
    assert used["model 1"]["blocked"] == [["wrist", "clasper"]]
    report = "\n".join(rule_lines(used, cleaner.class_names))
    assert (
        "No wrist → clasper changes: the model calls more drawn wrist clasper than wrist." in report
    )


def test_a_cleaner_used_again_forgets_what_the_last_frames_showed(confused):
    """The GUI keeps one cleaner per model. Frames where it knew nothing (the guard
    stopped it) must not stop it on the next frames, nor set their T, cap or blocks."""
    ds, q = confused
    live = {key: np.full_like(v, 0.25) for key, v in q.items()}  # first: pure guesses
    cleaner = cleaner_for(live)
    list(clean(ds, cleaner))
    assert cleaner.weak_reason and "no better than the class frequencies" in cleaner.weak_reason
    live.update(q)  # then the confused model, which the guard passes
    again = [r.proposed for r in clean(ds, cleaner)]
    fresh = cleaner_for(q)
    first = [r.proposed for r in clean(ds, fresh)]
    assert cleaner.weak_reason is None and cleaner.blocked_pairs() == fresh.blocked_pairs()
    assert cleaner.noise_rate == fresh.noise_rate and np.allclose(cleaner.t_c, fresh.t_c)
    assert all((a == b).all() for a, b in zip(again, first))
