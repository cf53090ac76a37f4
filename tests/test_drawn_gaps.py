"""Drawn gaps (issue 10, do no harm): a gap in a drawn part that is narrower than the
model's output cell is left as drawn. The model's logits are interpolated across it, so
its claim that the gap is part of the instrument (open jaws "filled in") is not evidence."""

from __future__ import annotations

import numpy as np

from jcas_napari.core.propose import RuleSettings, drawn_gaps, is_drawn, propose
from tests.test_part_check import BG, CLASPER, SHAFT, WRIST, one_hot

T = np.full((4, 4), 0.05) + 0.8 * np.eye(4)  # labels 85% right


def open_jaws() -> np.ndarray:
    """A 96x128 mask: a shaft, and two clasper jaws 6 px apart (the gap between them is
    background), plus one part drawn nowhere near them."""
    given = np.zeros((96, 128), np.uint8)
    given[40:56, 0:50] = SHAFT
    given[34:44, 50:90] = CLASPER  # upper jaw
    given[50:60, 50:90] = CLASPER  # lower jaw; rows 44:50 between them are the gap
    given[80:90, 100:120] = WRIST
    return given


def test_the_gap_between_jaws_is_a_drawn_gap_and_open_background_is_not():
    given = open_jaws()
    gaps = drawn_gaps(given, 4, radius=4)
    assert gaps[CLASPER][44:50, 55:85].all()  # between the jaws
    assert not gaps[CLASPER][:30].any() and not gaps[CLASPER][:, 95:].any()
    assert not gaps[BG].any() and not gaps[SHAFT][given != BG].any()
    # Wider apart than about twice the radius: open background, not a gap.
    wide = given.copy()
    wide[50:60] = BG
    wide[60:70, 50:90] = CLASPER  # 16 px apart
    assert not drawn_gaps(wide, 4, radius=4)[CLASPER][44:60, 55:85].any()


def test_a_model_that_fills_the_jaws_changes_nothing_there_and_still_fixes_the_rest():
    given = open_jaws()
    model = given.copy()
    model[44:50, 50:90] = CLASPER  # fills the gap: 240 px
    model[10:22, 100:124] = SHAFT  # an instrument the mask missed, far from any drawing
    q = one_hot(model, sure=0.97)
    off = propose(q, given, T, settings=RuleSettings(temporal=False, drawn_gaps=0))
    assert (off.proposed[44:50, 50:90] == CLASPER).all()
    on = propose(q, given, T, settings=RuleSettings(temporal=False), scale=2.0)
    assert (on.proposed[44:50, 50:90] == BG).all()
    assert (on.proposed[10:22, 100:124] == SHAFT).all()
    assert [r.to_class for r in on.info] == [SHAFT]


def test_pixel_noise_is_not_a_drawing_and_its_holes_still_get_fixed():
    rng = np.random.default_rng(0)
    truth = open_jaws()
    flips = rng.random(truth.shape) < 0.5
    given = np.where(flips, rng.integers(0, 4, truth.shape), truth).astype(np.uint8)
    assert is_drawn(truth) and not is_drawn(given)
    t = np.full((4, 4), 0.125) + 0.5 * np.eye(4)
    fixed = propose(one_hot(truth, sure=0.97), given, t, settings=RuleSettings(temporal=False))
    inside = (truth == CLASPER) & (given == BG)
    assert inside.sum() > 100 and (fixed.proposed[inside] == CLASPER).mean() > 0.9
