"""The rule's T comes from the frames the model trained on (``guards.trained_frames``)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from jcas_napari.core.clean import Cleaner, check_on_data
from jcas_napari.core.propose import RuleSettings
from jcas_napari.data.fingerprint import fingerprint
from jcas_napari.data.io import ArrayDataset
from tests.test_proposals import random_checkpoint


def q_of(part: np.ndarray) -> np.ndarray:
    """A confident model [4,H,W] that calls ``part`` [H,W] class ids."""
    q = np.eye(4, dtype=np.float32)[part].transpose(2, 0, 1) * 0.9 + 0.025
    return q / q.sum(0)


def two_kinds_of_frames(n: int = 8, shade: int = 0):
    """Clean masks of one rectangle part; images tell the frames apart (pixel value =
    index + ``shade``). The model's q: the truth on frames 0-3; on frames 4-7 it also calls
    a 6-px rim part (a model that transfers badly to frames it never saw)."""
    truth = np.zeros((n, 128, 160), np.uint8)
    truth[:, 40:88, 50:110] = 1
    images = np.arange(n, dtype=np.uint8)[:, None, None, None] + np.uint8(shade)
    images = np.ascontiguousarray(np.broadcast_to(images, (n, 128, 160, 3)))
    ds = ArrayDataset(images, truth.copy())
    wide = ndi.binary_dilation(truth[0] == 1, np.ones((13, 13))).astype(np.intp)
    known, wrong = q_of(truth[0].astype(np.intp)), q_of(wide)
    return ds, lambda ims: [known if im[0, 0, 0] - shade < 4 else wrong for im in ims]


def cleaner_for(ds, probabilities, trained: list[int], **settings) -> Cleaner:
    ckpt = random_checkpoint(0.3)
    ckpt["trained_on"] = {ds.ids[i]: fingerprint(ds[i].image) for i in trained}
    cleaner = Cleaner(ckpt, 4, "cpu", RuleSettings(**settings))
    cleaner.probabilities = probabilities
    return cleaner


def test_t_comes_from_the_frames_the_model_trained_on():
    ds, probs = two_kinds_of_frames()
    every = list(range(len(ds)))
    found = check_on_data(ds, cleaner_for(ds, probs, [0, 1, 2, 3]), every)
    # On the frames it trained on, the labels look right. On frames 4-7 its rim (60x72 - 48x60
    # = 1440 px a frame) reads as part drawn as background: 4 x 1440 of the 8 x 2880 + 4 x 1440
    # pixels it calls part, so T[1, 1] = 0.8 over all frames.
    assert found.t_c[1, 1] > 0.99 and (found.frames, found.in_sample) == (4, True)
    off = check_on_data(ds, cleaner_for(ds, probs, [0, 1, 2, 3], t_from_trained=False), every)
    assert abs(off.t_c[1, 1] - 0.8) < 0.03 and (off.frames, off.in_sample) == (8, False)


def test_all_frames_are_used_when_fewer_than_four_were_trained_on():
    ds, probs = two_kinds_of_frames()
    every = list(range(len(ds)))
    unknown = check_on_data(ds, cleaner_for(ds, probs, []), every)  # e.g. the shipped model
    assert abs(unknown.t_c[1, 1] - 0.8) < 0.03 and not unknown.in_sample
    three = check_on_data(ds, cleaner_for(ds, probs, [0, 1, 2]), every)
    np.testing.assert_allclose(three.t_c, unknown.t_c)
    assert not three.in_sample
    # Cleaning only frames the model never saw (cross-fitting): all of them are used.
    unseen = check_on_data(ds, cleaner_for(ds, probs, [0, 1, 2, 3]), [4, 5, 6, 7])
    assert unseen.t_c[1, 1] < 0.7 and (unseen.frames, unseen.in_sample) == (4, False)


def test_a_frame_with_a_trained_id_but_other_content_is_not_taken_as_trained():
    """In-memory layers are named by position: another video loaded in their place has
    the same ids. The content decides."""
    ds, probs = two_kinds_of_frames()
    cleaner = cleaner_for(ds, probs, [0, 1, 2, 3])
    other, other_probs = two_kinds_of_frames(shade=100)
    cleaner.probabilities = other_probs
    found = check_on_data(other, cleaner, list(range(len(other))))
    assert not found.in_sample and abs(found.t_c[1, 1] - 0.8) < 0.03


def test_the_guard_still_looks_at_every_frame():
    """A model that knows its training frames and calls everything else 'wrist': T comes
    from the frames it trained on, but the guard sees all of them and stops it."""
    ds, _ = two_kinds_of_frames()
    known, wrist = q_of(ds[0].mask.astype(np.intp)), q_of(np.full((128, 160), 2, np.intp))
    probs = lambda ims: [known if im[0, 0, 0] < 4 else wrist for im in ims]  # noqa: E731
    cleaner = cleaner_for(ds, probs, [0, 1, 2, 3])
    found = check_on_data(ds, cleaner, list(range(len(ds))))
    assert found.in_sample and found.t_c[1, 1] > 0.99
    assert found.reason and "no better than the class frequencies" in found.reason
    alone = check_on_data(ds, cleaner, [0, 1, 2, 3])  # its own frames alone: it passes
    assert alone.reason is None
