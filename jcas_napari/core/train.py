"""Training steps for JCAS (stage 1 warm-up, stage 2 JCAS) and the plain-CE baseline.

The full generator-based training loop (epochs, checkpoints, events) builds on these.
"""

from __future__ import annotations

import torch
from torch import nn

from jcas_napari.core.config import Config
from jcas_napari.core.losses import corrected_ce, jcas_loss
from jcas_napari.core.model import JCASNet
from jcas_napari.core.transitions import TransitionMatrix


def make_optimiser(net: JCASNet, lr: float) -> torch.optim.SGD:
    """SGD (momentum 0.9, weight decay 5e-4) with the heads at 10x ``lr``, as in the paper."""
    heads = {id(p) for p in net.head_parameters()}
    trunk = [p for p in net.parameters() if id(p) not in heads and p.requires_grad]
    return torch.optim.SGD(
        [{"params": trunk, "lr": lr}, {"params": net.head_parameters(), "lr": 10 * lr}],
        lr=lr, momentum=0.9, weight_decay=5e-4,
    )  # fmt: skip


def make_t_optimiser(t_c: TransitionMatrix, t_a: TransitionMatrix, lr: float):
    """The transition matrices' own SGD (momentum 0.9, no weight decay) at their own lr."""
    return torch.optim.SGD([*t_c.parameters(), *t_a.parameters()], lr=lr, momentum=0.9)


def jcas_step(
    net: JCASNet,
    images: torch.Tensor,
    target: torch.Tensor,
    cfg: Config,
    optimisers: list[torch.optim.Optimizer],
    transitions: tuple[TransitionMatrix, TransitionMatrix] | None = None,
    prior: torch.Tensor | None = None,
) -> dict[str, float]:
    """One optimisation step. images [B,3,H,W], target [B,H,W] long (255 = ignore).

    Stage 1 when ``transitions`` is None (identity T), stage 2 otherwise.
    Returns the loss terms and ``total`` as floats.
    """
    out = net(images)
    t_c = t_a = None
    if transitions is not None:
        t_c, t_a = transitions[0](), transitions[1]()
    total, terms = jcas_loss(out, target, cfg.loss, cfg.affinity.grid, t_c, t_a, prior,
                             cfg.affinity.chunk)  # fmt: skip
    for opt in optimisers:
        opt.zero_grad(set_to_none=True)
    total.backward()
    for opt in optimisers:
        opt.step()
    return {**terms, "total": float(total.detach())}


def ce_step(
    net: JCASNet, images: torch.Tensor, target: torch.Tensor, cfg: Config,
    optimiser: torch.optim.Optimizer,
) -> dict[str, float]:  # fmt: skip
    """One plain cross-entropy step on both heads (seg2 + 0.1 seg1), no affinity branch."""
    out = net(images, with_features=False)
    up = nn.functional.interpolate
    size = tuple(target.shape[-2:])
    seg = [corrected_ce(up(z, size=size, mode="bilinear", align_corners=True), target)
           for z in out.logits]  # fmt: skip
    total = cfg.loss.seg2 * seg[1] + cfg.loss.seg1 * seg[0]
    optimiser.zero_grad(set_to_none=True)
    total.backward()
    optimiser.step()
    return {"seg1": float(seg[0].detach()), "seg2": float(seg[1].detach()),
            "total": float(total.detach())}  # fmt: skip
