"""The rule's T comes from the frames the model trained on (``guards.trained_frames``)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from jcas_napari.core.clean import Cleaner, check_on_data
from jcas_napari.core.propose import RuleSettings
from jcas_napari.data.io import ArrayDataset
from tests.test_proposals import random_checkpoint


def two_kinds_of_frames(n: int = 8):
    """Clean masks of one rectangle part; images tell the frames apart (pixel value = index).
    The model's q: the truth on frames 0-3; on frames 4-7 it also calls a 6-px rim part
    (a model that transfers badly to frames it never saw)."""
    truth = np.zeros((n, 128, 160), np.uint8)
    truth[:, 40:88, 50:110] = 1
    images = np.repeat(np.arange(n, dtype=np.uint8)[:, None, None, None], 128, 1)
    images = np.ascontiguousarray(np.broadcast_to(images, (n, 128, 160, 3)))
    ds = ArrayDataset(images, truth.copy())
    wide = ndi.binary_dilation(truth[0] == 1, np.ones((13, 13))).astype(np.intp)

    def q_of(part: np.ndarray) -> np.ndarray:
        q = np.eye(4, dtype=np.float32)[part].transpose(2, 0, 1) * 0.9 + 0.025
        return q / q.sum(0)

    q_known, q_wrong = q_of(truth[0].astype(np.intp)), q_of(wide)
    return ds, lambda ims: [q_known if im[0, 0, 0] < 4 else q_wrong for im in ims]


def cleaner_for(ds, probabilities, trained: list[int], **settings) -> Cleaner:
    ckpt = random_checkpoint(0.3)
    ckpt["trained_on"] = [ds.ids[i] for i in trained]
    cleaner = Cleaner(ckpt, 4, "cpu", RuleSettings(**settings))
    cleaner.probabilities = probabilities
    return cleaner


def test_t_comes_from_the_frames_the_model_trained_on():
    ds, probs = two_kinds_of_frames()
    every = list(range(len(ds)))
    in_sample = check_on_data(ds, cleaner_for(ds, probs, [0, 1, 2, 3]), every).t_c
    # On the frames it trained on, the labels look right. On frames 4-7 its rim (60x72 - 48x60
    # = 1440 px a frame) reads as part drawn as background: 4 x 1440 of the 8 x 2880 + 4 x 1440
    # pixels it calls part, so T[1, 1] = 0.8 over all frames.
    assert in_sample[1, 1] > 0.99
    everything = check_on_data(
        ds, cleaner_for(ds, probs, [0, 1, 2, 3], t_from_trained=False), every
    )
    assert abs(everything.t_c[1, 1] - 0.8) < 0.03


def test_all_frames_are_used_when_fewer_than_four_were_trained_on():
    ds, probs = two_kinds_of_frames()
    every = list(range(len(ds)))
    unknown = check_on_data(ds, cleaner_for(ds, probs, []), every).t_c  # e.g. the shipped model
    assert abs(unknown[1, 1] - 0.8) < 0.03
    three = check_on_data(ds, cleaner_for(ds, probs, [0, 1, 2]), every).t_c
    np.testing.assert_allclose(three, unknown)
    # Cleaning only frames the model never saw (cross-fitting): all of them are used.
    unseen = [4, 5, 6, 7]
    held_out = check_on_data(ds, cleaner_for(ds, probs, [0, 1, 2, 3]), unseen).t_c
    off = check_on_data(ds, cleaner_for(ds, probs, [0, 1, 2, 3], t_from_trained=False), unseen)
    np.testing.assert_allclose(held_out, off.t_c)
    assert held_out[1, 1] < 0.7  # the rim alone: 1440 of 4320 px called part
