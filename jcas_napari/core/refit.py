"""T_C re-estimated at the end of training, on the frames the model trained on.

Why: after stage 2 under heavy flips, the network's clean-class posterior q is diffuse. A
small class keeps a little probability on every background pixel, and over a whole frame
that little adds up: on development runs (symmetric50 and asymmetric50, families a and b),
24-78% of the clasper probability mass lay on pixels that are truly background, and the
learned T_C's largest error was T[clasper, background], overstated by up to 0.16. A T
fitted to a miscalibrated q is biased. With the network frozen, the maximum-likelihood T
under the squared, renormalised posterior (temperature 0.5) halved the mean error and the
largest one on those runs (docs/method.md, "T_C re-estimated"). The argmax alone (the
temperature's limit) was worse than the learned T_C: it counts every error of the model
as label noise.

The learned T_C stays in the checkpoint as ``t_c``: it is the matrix the network was
trained with, so the guard, which scores the trained pair q T, keeps using it. The re-estimate
is ``t_c_refit``, the estimate of the noise shown to the user and in reports.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from jcas_napari.core.checkpoint import load_checkpoint, save_checkpoint
from jcas_napari.core.guards import evenly
from jcas_napari.core.infer import predict
from jcas_napari.core.transitions import em_estimate
from jcas_napari.core.validate import SAMPLE_STRIDE, load_frames, sharpen

REFIT_TEMPERATURE = 0.5
MAX_FRAMES = 64  # evenly spaced training frames: enough pixels for K x K numbers


@torch.no_grad()
def refit_transition(net, cfg, dataset: Sequence, indices: Sequence[int], start, device, ignore):
    """T [K,K]: EM (``transitions.em_estimate``) of the noisy labels of frames ``indices``
    under ``sharpen(q, REFIT_TEMPERATURE) T``, q the network's DAR-refined posterior at its
    input size (every ``SAMPLE_STRIDE``-th pixel), starting from ``start`` [K,K]."""
    was_training = net.training
    net.eval()
    size, k = (cfg.input.height, cfg.input.width), len(start)
    qs, labels = [], []
    frames = evenly(list(indices), MAX_FRAMES)
    for i in range(0, len(frames), 8):
        x, y, _ = load_frames(dataset, frames[i : i + 8], size, device)
        q = predict(net, x, cfg).cpu().numpy()[:, :, ::SAMPLE_STRIDE, ::SAMPLE_STRIDE]
        qs.append(q.transpose(0, 2, 3, 1).reshape(-1, k))
        labels.append(y[:, ::SAMPLE_STRIDE, ::SAMPLE_STRIDE].reshape(-1))
    net.train(was_training)
    q, lab = np.concatenate(qs), np.concatenate(labels)
    keep = lab != ignore
    return em_estimate(sharpen(q[keep], REFIT_TEMPERATURE), lab[keep], np.asarray(start))


def refit_best(run) -> np.ndarray | None:
    """Add ``t_c_refit`` to the run's best checkpoint when it comes from stage 2 of a
    method that learns T (``run``: a :class:`jcas_napari.core.train.Trainer`, rank 0).
    The best epoch's weights are loaded into ``run.net``: training is over. Returns the
    re-estimate, or None where there is none to make."""
    path = run.ckpt_dir / "best.pt"
    if run.method == "ce" or not path.exists():
        return None
    ckpt = load_checkpoint(path, run.k)
    if int(ckpt.get("stage", 1)) != 2:
        return None
    if "t_c_refit" not in ckpt:  # a finished run resumed again: already there
        run.net.load_state_dict(ckpt["model"])
        t = refit_transition(
            run.net,
            run.config,
            run.dataset,
            run.train_idx,
            ckpt["t_c"].numpy(),
            run.dev,
            run.ignore,
        )
        ckpt["t_c_refit"] = torch.tensor(t)
        save_checkpoint(path, ckpt)
    return ckpt["t_c_refit"].numpy()
