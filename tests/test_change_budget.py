"""The change budget: the noise rate of the data, shared out by where the posterior
expects the wrong labels (issue 10)."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from jcas_napari.core.clean import Cleaner, check_on_data, clean
from jcas_napari.core.propose import expected_wrong
from jcas_napari.data.io import open_dataset
from jcas_napari.data.make import make_dataset
from tests.test_proposals import random_checkpoint

T2 = np.array([[0.8, 0.2], [0.2, 0.8]])


def test_expected_wrong_is_the_mean_posterior_that_the_label_is_wrong():
    q = np.full((10, 2), 0.5)
    # Undecided model: the label's own likelihood decides, P(clean = 0 | given 0) = 0.8.
    assert np.isclose(expected_wrong(q, np.zeros(10, np.intp), T2), 0.2)
    sure = np.tile([0.0, 1.0], (10, 1))
    assert np.isclose(expected_wrong(sure, np.zeros(10, np.intp), T2), 1.0)
    assert np.isclose(expected_wrong(sure, np.ones(10, np.intp), T2), 0.0)
    # Per band: band 1 trusts its labels completely.
    bands = np.array([0] * 5 + [1] * 5)
    per_band = np.stack([T2, np.eye(2)])
    assert np.isclose(expected_wrong(q, np.zeros(10, np.intp), per_band, bands), 0.1)
    assert expected_wrong(q[:0], np.zeros(0, np.intp), T2) == 0.0


def budget_of(cleaner: Cleaner, share_of_frame: float) -> int:
    """The budget of a 20 x 50 frame whose labels the posterior expects wrong at
    ``share_of_frame``, under T2 (an undecided model on label 0 expects 0.2)."""
    given = np.zeros((20, 50), np.uint8)
    q = np.zeros((2, 20, 50), np.float32)
    n_wrong = int(round(share_of_frame * given.size))
    q[0].flat[n_wrong:] = 1.0
    q[1].flat[:n_wrong] = 1.0
    return cleaner.change_budget(q, given, T2, None, np.ones(given.shape, bool))


def test_each_frame_gets_the_rate_times_its_share_of_expected_errors():
    cleaner = Cleaner(random_checkpoint(), 4, "cpu")
    cleaner.noise_rate = 0.01
    # Without a check on the data every frame gets the rate: 1% of 1000 pixels.
    assert budget_of(cleaner, 0.1) == 10
    cleaner.wrong_share = (0.05, 0.2)  # mean and largest share on the checked frames
    # (Budgets are rounded up from float32 shares: within one pixel.)
    assert abs(budget_of(cleaner, 0.05) - 10) <= 1  # an average frame: the rate
    assert abs(budget_of(cleaner, 0.1) - 20) <= 1  # twice the expected errors: twice the budget
    assert budget_of(cleaner, 0.0) == 0  # nothing expected wrong: nothing changes
    # A frame the model finds more wrong than any checked frame gets the largest share's
    # budget, not more.
    assert budget_of(cleaner, 0.6) == budget_of(cleaner, 0.2)
    assert abs(budget_of(cleaner, 0.2) - 40) <= 1
    cleaner.wrong_share = (0.0, 0.0)  # T = I on the data: the rate (0 there) as it is
    assert budget_of(cleaner, 0.1) == 10


def test_the_check_on_the_data_measures_the_expected_errors_and_reset_forgets_them(tmp_path):
    make_dataset(tmp_path / "ds", sequences=2, frames=3, size=(64, 80), noise="ellipse", seed=9)
    ds = open_dataset(tmp_path / "ds")
    q = {}
    for i in range(len(ds)):
        # A model that knows the clean masks, a little blurred: it expects the ellipse
        # labels wrong where they differ from the truth.
        onehot = np.eye(4, dtype=np.float32)[ds[i].clean].transpose(2, 0, 1)
        q[hashlib.md5(ds[i].image.tobytes()).hexdigest()] = 0.9 * onehot + 0.025
    ckpt = random_checkpoint(0.3)
    ckpt["stage"], ckpt["t_c"] = 2, torch.tensor(np.full((4, 4), 0.05) + 0.8 * np.eye(4))
    cleaner = Cleaner(ckpt, 4, "cpu")
    cleaner.probabilities = lambda ims: [q[hashlib.md5(im.tobytes()).hexdigest()] for im in ims]
    found = check_on_data(ds, cleaner, list(range(len(ds))))
    mean, top = found.wrong_share
    wrong = np.mean([(ds[i].mask != ds[i].clean).mean() for i in range(len(ds))])
    assert 0 < mean <= top <= 1
    assert 0.3 * wrong < mean < 3 * wrong  # on the scale of the labels that are wrong
    results = list(clean(ds, cleaner))
    assert cleaner.wrong_share == found.wrong_share
    assert any(r.changed_fraction > 0 for r in results)
    cleaner.reset()
    assert cleaner.wrong_share is None


def test_the_report_says_how_the_budget_was_shared_out():
    from jcas_napari.batch import budget_line

    assert budget_line(0.01, None) == "change budget 1.00% of the labelled pixels of each frame"
    shared = budget_line(0.01, [0.05, 0.2])
    assert "shared out by each frame's expected errors" in shared
    assert shared.endswith("(at most 4.00% of a frame)")
