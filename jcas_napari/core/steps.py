"""One optimisation step of each method, and the optimisers they use.

Shapes: images [B,3,H,W] float (normalised), target [B,H,W] long (255 = ignore).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from jcas_napari.core.config import Config
from jcas_napari.core.losses import corrected_ce, jcas_loss
from jcas_napari.core.model import JCASNet, JCASOutput
from jcas_napari.core.transitions import (
    TransitionMatrix,
    class_to_affinity,
    clean_prior_from_noisy,
    fill_unseen_rows,
)
from jcas_napari.core.validate import validate


def make_optimiser(net: JCASNet, lr: float, kind: str = "sgd") -> torch.optim.Optimizer:
    """SGD (momentum 0.9, weight decay 5e-4) with the heads at 10x ``lr``, as in the paper;
    ``kind="adam"`` uses Adam (same groups, heads at 10x) for short runs from random init."""
    heads = {id(p) for p in net.head_parameters()}
    trunk = [p for p in net.parameters() if id(p) not in heads and p.requires_grad]
    groups = [{"params": trunk, "lr": lr}, {"params": net.head_parameters(), "lr": 10 * lr}]
    if kind == "adam":
        return torch.optim.Adam(groups, lr=lr, weight_decay=5e-4)
    if kind != "sgd":
        raise ValueError(f"unknown optimizer {kind!r}; choose sgd or adam")
    return torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=5e-4)


def make_t_optimiser(
    t_c: TransitionMatrix, t_a: TransitionMatrix, lr: float, kind: str = "adam"
) -> torch.optim.Optimizer:
    """The transition matrices' own optimiser (no weight decay) at their own lr.

    Adam by default: the gradient reaching W is damped by sigmoid'(W) (0.10 at the paper's
    W = -2) and by the pixel-mean losses, so SGD at the paper's lr moved W by well under
    0.5 in a short run and T stayed at its start. Adam's steps do not depend on that scale.
    """
    params = [*t_c.parameters(), *t_a.parameters()]
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr)
    if kind != "sgd":
        raise ValueError(f"unknown t_optimizer {kind!r}; choose adam or sgd")
    return torch.optim.SGD(params, lr=lr, momentum=0.9)


def stage2_epochs(epochs: int, min_steps: int, steps_per_epoch: int) -> tuple[int, str | None]:
    """Stage-2 epochs: ``epochs``, raised so that stage 2 runs at least ``min_steps``
    optimiser steps (0 stays 0: no stage 2 asked for); and a note for the user when raised.

    On a few frames an epoch is a few steps, and what T_C and the network need is steps:
    on 36 training frames (9 steps per epoch), 5 stage-2 epochs left T_C 0.03-0.06 from
    the true flip matrix (MAE) and 15 brought it to 0.02-0.03 (benchmarks/RESULTS.md).
    """
    if epochs <= 0:
        return 0, None
    n = max(epochs, math.ceil(min_steps / max(steps_per_epoch, 1)))
    if n == epochs:
        return n, None
    per = f"{steps_per_epoch} step{'s' if steps_per_epoch != 1 else ''} per epoch"
    return n, (
        f"stage 2 runs {n} epochs, not {epochs}: at least {min_steps} steps "
        f"(train.min_steps_jcas) at {per}"
    )


WEAK_SIGNAL = 0.5  # labels that carry half their class signal or less
MAX_STRETCH = 3.0


def stretch_stage2(epochs: list[int], signal: float) -> tuple[list[int], str | None]:
    """The stage schedule (1 = warm-up, 2 = JCAS per epoch), with stage 2 made 1/signal
    times longer (at most 3x) when the labels' class signal (``label_signal`` of the
    stage-2 start T_C) is at most 0.5; and a note for the user when it is.

    The pull towards a pixel's true class scales with that signal, so heavily flipped labels
    need more steps for the network, and T_C with it, to get as far: on development data a
    5-epoch stage 2 left T_C 0.03-0.06 from the true flip matrix and 15 epochs 0.02-0.03.
    Above 0.5 (border and shape noise, clean masks) nothing changes: there, longer training
    fits the noise (benchmarks/RESULTS.md, "round of the step floor").
    """
    jcas = epochs.count(2)
    if jcas == 0 or signal > WEAK_SIGNAL:
        return epochs, None
    n = math.ceil(jcas * min(MAX_STRETCH, 1 / max(signal, 1e-6)) - 1e-9)
    note = (
        f"the labels look heavily flipped (class signal {signal:.2f}; 1 is clean): "
        f"stage 2 runs {n} epochs, not {jcas} (train.stretch_stage2)"
    )
    return [e for e in epochs if e != 2] + [2] * n, note


def start_transitions(
    net: JCASNet,
    cfg: Config,
    dataset: Sequence,
    indices: Sequence[int],
    k: int,
    device: torch.device,
    noisy_prior: np.ndarray,
    ignore_index: int = 255,
    refine: bool = True,
) -> tuple[TransitionMatrix, TransitionMatrix]:
    """Fresh T_C [K,K] and T_A [2,2] for stage 2.

    ``t_init: anchor`` starts T_C at the anchor-point estimate from the warm-up model's
    noisy posterior on ``indices`` (held-out frames where there are any; a class without
    anchors starts as noisy as the others, ``fill_unseen_rows``), and T_A at the
    affinity transition that this T_C implies. ``paper`` starts both at W = -2.
    ``refine``: predict with DAR, as the model will be used (False for VolMin, which has
    no trained affinity branch).
    """
    if cfg.train.t_init == "paper":
        return TransitionMatrix(k).to(device), TransitionMatrix(2).to(device)
    if cfg.train.t_init != "anchor":
        raise ValueError(f"unknown t_init {cfg.train.t_init!r}; choose anchor or paper")
    check = validate(net, cfg, dataset, indices, k, device, ignore_index, refine)
    t_est = fill_unseen_rows(check.t_anchor, check.anchor_seen)
    prior = torch.tensor(clean_prior_from_noisy(noisy_prior, t_est))
    t_a = class_to_affinity(torch.tensor(t_est), prior).numpy()
    return TransitionMatrix(k, matrix=t_est).to(device), TransitionMatrix(2, matrix=t_a).to(device)


def _forward(net: nn.Module, images: torch.Tensor, amp: bool, **kw) -> JCASOutput:
    """Network forward, under fp16 autocast on CUDA when ``amp``; outputs in float32."""
    with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
        out = net(images, **kw)
    return JCASOutput(tuple(t.float() for t in out.logits), tuple(t.float() for t in out.features))


def jcas_step(
    net: nn.Module,
    images: torch.Tensor,
    target: torch.Tensor,
    cfg: Config,
    optimisers: list[torch.optim.Optimizer],
    transitions: tuple[TransitionMatrix, TransitionMatrix] | None = None,
    prior: torch.Tensor | None = None,
    scaler: torch.amp.GradScaler | None = None,
    after_backward: Callable[[], None] | None = None,
) -> dict[str, float]:
    """One optimisation step. images [B,3,H,W], target [B,H,W] long (255 = ignore).

    Stage 1 when ``transitions`` is None (identity T), stage 2 otherwise. ``scaler`` turns
    on fp16 autocast (CUDA). ``after_backward`` runs between backward and the update (DDP
    uses it to average the T gradients). Returns the loss terms and ``total`` as floats.
    """
    out = _forward(net, images, scaler is not None)
    t_c = t_a = None
    if transitions is not None:
        t_c, t_a = transitions[0](), transitions[1]()
    total, terms = jcas_loss(
        out, target, cfg.loss, cfg.affinity.grid, t_c, t_a, prior, cfg.affinity.chunk
    )
    for opt in optimisers:
        opt.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(total).backward()
    else:
        total.backward()
    if after_backward is not None:
        after_backward()
    for opt in optimisers:
        if scaler is not None:
            scaler.step(opt)
        else:
            opt.step()
    if scaler is not None:
        scaler.update()
    return as_floats({**terms, "total": total.detach()})


def as_floats(terms: dict[str, torch.Tensor]) -> dict[str, float]:
    """Scalar tensors -> floats with one device synchronisation, after the update."""
    values = torch.stack([v.reshape(()).float() for v in terms.values()]).tolist()
    return dict(zip(terms, values))


def ce_step(
    net: nn.Module,
    images: torch.Tensor,
    target: torch.Tensor,
    cfg: Config,
    optimiser: torch.optim.Optimizer,
    t_c: TransitionMatrix | None = None,
    t_optimiser: torch.optim.Optimizer | None = None,
    vol_weight: float = 0.0,
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, float]:
    """One class-loss-only step on both heads (seg2 + 0.1 seg1), no affinity branch.

    Plain CE by default; with ``t_c`` it is forward correction with ``vol_weight`` x
    log det T_C (the VolMin baseline). ``scaler`` turns on fp16 autocast (CUDA), as for
    JCAS, so that the methods compare at the same precision.
    """
    out = _forward(net, images, scaler is not None, with_features=False)
    size = tuple(target.shape[-2:])
    t = t_c() if t_c is not None else None
    seg = [
        corrected_ce(
            nn.functional.interpolate(z, size=size, mode="bilinear", align_corners=True), target, t
        )
        for z in out.logits
    ]
    total = cfg.loss.seg2 * seg[1] + cfg.loss.seg1 * seg[0]
    if t is not None and vol_weight:
        total = total + vol_weight * torch.linalg.slogdet(t).logabsdet
    opts = [optimiser] + ([t_optimiser] if t_optimiser is not None else [])
    for opt in opts:
        opt.zero_grad(set_to_none=True)
    (scaler.scale(total) if scaler is not None else total).backward()
    for opt in opts:
        scaler.step(opt) if scaler is not None else opt.step()
    if scaler is not None:
        scaler.update()
    return as_floats({"seg1": seg[0].detach(), "seg2": seg[1].detach(), "total": total.detach()})
