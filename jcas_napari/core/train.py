"""JCAS training: a generator that yields progress events and returns the result.

``train(dataset, config, run_dir)`` runs stage 1 (warm-up: CE + affinity BCE on the noisy
masks, T = I) and stage 2 (JCAS: fresh T_C and T_A on their own optimiser, started from
the best stage-1 weights). The GUI drives it in a worker thread, the CLI and the tests
synchronously (``run_sync``). Cancellation is cooperative and checked every step; files are
written only at epoch ends, atomically, so a cancel or a crash keeps the last good
checkpoint.

Model selection never sees clean masks: the best epoch is the one whose predictions agree
most (pixel accuracy) with the **noisy** masks of a validation split held out by sequence.
Under class-conditional noise whose T has a dominant diagonal, P(noisy = prediction) is
highest when the prediction is the clean class, so noisy accuracy ranks models as clean
accuracy would. (IoU against noisy masks does not: flip noise spreads every class over
the frame, and compact, correct predictions score low.) Clean masks, when present, are
scored for information only.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from jcas_napari.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from jcas_napari.core.config import Config
from jcas_napari.core.infer import to_tensor
from jcas_napari.core.losses import corrected_ce, jcas_loss
from jcas_napari.core.model import JCASNet, JCASOutput, build_model
from jcas_napari.core.transitions import (
    TransitionMatrix,
    class_counts,
    class_to_affinity,
    clean_prior_from_noisy,
    prior_from_counts,
)
from jcas_napari.core.validate import validate
from jcas_napari.data.io import atomic_write_bytes, remove_stale_temp_files
from jcas_napari.data.resize import resize_image, resize_mask

SELECTION_METRIC = "val_noisy_acc"
GUARD_KEYS = ("val_nll", "prior_nll", "val_gain", "temperature")
METHODS = ("jcas", "ce", "volmin")

# ----------------------------------------------------------------------------- steps


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


def make_t_optimiser(t_c: TransitionMatrix, t_a: TransitionMatrix, lr: float,
                     kind: str = "adam") -> torch.optim.Optimizer:  # fmt: skip
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


def start_transitions(
    net: JCASNet, cfg: Config, dataset: Sequence, indices: Sequence[int], k: int,
    device: torch.device, noisy_prior: np.ndarray, ignore_index: int = 255,
) -> tuple[TransitionMatrix, TransitionMatrix]:  # fmt: skip
    """Fresh T_C [K,K] and T_A [2,2] for stage 2.

    ``t_init: anchor`` starts T_C at the anchor-point estimate from the warm-up model's
    noisy posterior on ``indices`` (held-out frames where there are any), and T_A at the
    affinity transition that this T_C implies. ``paper`` starts both at W = -2.
    """
    if cfg.train.t_init == "paper":
        return TransitionMatrix(k).to(device), TransitionMatrix(2).to(device)
    if cfg.train.t_init != "anchor":
        raise ValueError(f"unknown t_init {cfg.train.t_init!r}; choose anchor or paper")
    t_est = validate(net, cfg, dataset, indices, k, device, ignore_index).t_anchor
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
    total, terms = jcas_loss(out, target, cfg.loss, cfg.affinity.grid, t_c, t_a, prior,
                             cfg.affinity.chunk)  # fmt: skip
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
    net: nn.Module, images: torch.Tensor, target: torch.Tensor, cfg: Config,
    optimiser: torch.optim.Optimizer, t_c: TransitionMatrix | None = None,
    t_optimiser: torch.optim.Optimizer | None = None, vol_weight: float = 0.0,
) -> dict[str, float]:  # fmt: skip
    """One class-loss-only step on both heads (seg2 + 0.1 seg1), no affinity branch.

    Plain CE by default; with ``t_c`` it is forward correction with ``vol_weight`` x
    log det T_C (the VolMin baseline).
    """
    out = _forward(net, images, False, with_features=False)
    size = tuple(target.shape[-2:])
    t = t_c() if t_c is not None else None
    seg = [corrected_ce(nn.functional.interpolate(z, size=size, mode="bilinear",
                                                  align_corners=True), target, t)
           for z in out.logits]  # fmt: skip
    total = cfg.loss.seg2 * seg[1] + cfg.loss.seg1 * seg[0]
    if t is not None and vol_weight:
        total = total + vol_weight * torch.linalg.slogdet(t).logabsdet
    optimiser.zero_grad(set_to_none=True)
    if t_optimiser is not None:
        t_optimiser.zero_grad(set_to_none=True)
    total.backward()
    optimiser.step()
    if t_optimiser is not None:
        t_optimiser.step()
    return as_floats({"seg1": seg[0].detach(), "seg2": seg[1].detach(), "total": total.detach()})


# ----------------------------------------------------------------------------- data


def split_by_sequence(
    sequences: dict[str, list[int]], val_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """(train, val) frame indices; whole sequences go to validation.

    With a single sequence, the last ``val_fraction`` of its frames (a contiguous block)
    is held out instead. ``val_fraction = 0`` gives no validation set.
    """
    names = sorted(sequences)
    if val_fraction <= 0:
        return sorted(i for n in names for i in sequences[n]), []
    if len(names) == 1:
        idx = sequences[names[0]]
        n_val = max(1, int(round(val_fraction * len(idx))))
        return idx[:-n_val], idx[-n_val:]
    rng = np.random.default_rng(seed)
    n_val = min(len(names) - 1, max(1, int(round(val_fraction * len(names)))))
    val_names = set(rng.permutation(names)[:n_val].tolist())
    train = sorted(i for n in names if n not in val_names for i in sequences[n])
    val = sorted(i for n in names if n in val_names for i in sequences[n])
    return train, val


def fold_splits(sequences: dict[str, list[int]], folds: int, seed: int) -> list[list[int]]:
    """Frame indices of ``folds`` folds made of whole sequences (round-robin after a shuffle)."""
    names = sorted(sequences)
    if len(names) < folds:
        raise ValueError(f"{folds} folds need at least {folds} sequences, the dataset has "
                         f"{len(names)}")  # fmt: skip
    order = np.random.default_rng(seed).permutation(names)
    return [sorted(i for n in order[f::folds] for i in sequences[n]) for f in range(folds)]


def load_batch(
    dataset: Sequence, indices: Sequence[int], size: tuple[int, int],
    flips: Sequence[bool] | None = None, device: str | torch.device = "cpu",
    ignore_index: int = 255,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Read frames (lazily, one by one), resize and normalise them.

    Returns images [B,3,h,w] float and noisy masks [B,h,w] long.
    """
    imgs, masks = [], []
    for j, i in enumerate(indices):
        s = dataset[i]
        img, m = resize_image(s.image, size), resize_mask(s.mask, size)
        if flips is not None and flips[j]:
            img, m = img[:, ::-1], m[:, ::-1]
        imgs.append(img)
        masks.append(m)
    x = to_tensor(np.stack(imgs), device)
    y = torch.from_numpy(np.stack(masks).astype(np.int64)).to(device)
    return x, y


# ----------------------------------------------------------------------------- events


@dataclass
class TrainEvent:
    """Progress of training: small and picklable, for progress bars and the GUI."""

    kind: str  # "step", "epoch", or "message" (then val holds {"message": text})
    stage: int  # 1 warm-up, 2 JCAS
    epoch: int  # global epoch index, 0-based
    epochs_total: int
    step: int  # global step, 1-based
    steps_total: int
    losses: dict[str, float]
    t_c: np.ndarray  # [K,K]
    t_a: np.ndarray  # [2,2]
    images_per_s: float
    eta_s: float
    val: dict[str, float] | None = None


@dataclass
class TrainResult:
    run_dir: Path
    best: Path | None
    last: Path | None
    t_c: np.ndarray
    t_a: np.ndarray
    history: list[dict] = field(default_factory=list)
    cancelled: bool = False


def run_sync(gen: Generator, on_event: Callable[[TrainEvent], None] | None = None):
    """Drive a training generator to the end; returns its result."""
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_event is not None:
            on_event(event)


# ----------------------------------------------------------------------------- helpers


def pick_device(device: str = "auto") -> torch.device:
    """``auto``: CUDA, then Apple MPS, then CPU. Otherwise the named device, checked.

    CUDA comes back with its index (``cuda:N``, the current device: torchrun ranks set
    theirs), which DDP needs.
    """
    if device == "auto":
        if torch.cuda.is_available():
            device = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        else:
            return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    if dev.type == "cuda" and dev.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return dev


def _poly(opt: torch.optim.Optimizer, base: list[float], it: int, total: int) -> float:
    factor = (1 - min(it, total - 1) / max(total, 1)) ** 0.9
    for group, lr in zip(opt.param_groups, base):
        group["lr"] = lr * factor
    return factor


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _barrier() -> None:
    if _world() > 1:
        dist.barrier()


def _write_logs(run_dir: Path, history: list[dict]) -> None:
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys and k not in ("t_c", "t_a")]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    for row in history:
        writer.writerow({k: row.get(k, "") for k in keys})
    atomic_write_bytes(run_dir / "metrics.csv", buf.getvalue().encode())
    trans = [{"epoch": r["epoch"], "stage": r["stage"], "t_c": r["t_c"], "t_a": r["t_a"]}
             for r in history]  # fmt: skip
    atomic_write_bytes(run_dir / "transitions.json", json.dumps(trans, indent=1).encode())


# ----------------------------------------------------------------------------- train


def train(
    dataset: Sequence,
    config: Config,
    run_dir: os.PathLike | str,
    *,
    class_names: Sequence[str] | None = None,
    ignore_index: int = 255,
    device: str = "auto",
    seed: int = 0,
    resume: bool = False,
    init_checkpoint: os.PathLike | str | None = None,
    train_indices: Sequence[int] | None = None,
    should_stop: Callable[[], bool] | None = None,
    method: str = "jcas",
) -> Generator[TrainEvent, None, TrainResult]:
    """Train JCAS on ``dataset`` (a sequence of samples with ``image``, ``mask``), yielding a
    :class:`TrainEvent` per step and per epoch; returns a :class:`TrainResult`.

    Writes ``run_dir/checkpoints/{last,best}.pt``, ``metrics.csv`` and ``transitions.json``
    at each epoch end (rank 0 only under DDP). ``resume`` continues from ``last.pt``.
    ``init_checkpoint`` starts from another model's weights (fine-tuning).
    ``train_indices`` restricts training and validation to those frames (cross-fitting).
    ``method`` picks the loss: ``jcas`` (default); the baselines ``ce`` (plain CE on both
    heads in every epoch) and ``volmin`` (CE warm-up, then forward correction with T_C and
    the volume term; no affinity branch, no DAR).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    refine = method == "jcas"
    run_dir = Path(run_dir)
    ckpt_dir = run_dir / "checkpoints"
    names = list(class_names or getattr(getattr(dataset, "classes", None), "names", None)
                 or ("background", "shaft", "wrist", "clasper"))  # fmt: skip
    k = len(names)
    dev = pick_device(device)
    amp = dev.type == "cuda"
    rank, world = _rank(), _world()
    tc_cfg = config.train
    size = (config.input.height, config.input.width)

    state = None
    if _rank() == 0:
        remove_stale_temp_files(run_dir)  # left by a writer that was killed mid-write
    if resume and (ckpt_dir / "last.pt").exists():
        state = load_checkpoint(ckpt_dir / "last.pt", k)
        config = Config.from_dict(state["config"], "checkpoint config")
        tc_cfg = config.train
        seed = int(state["seed"])
    torch.manual_seed(seed)

    sequences = getattr(dataset, "sequences", None)
    seq_map = sequences() if callable(sequences) else {"": list(range(len(dataset)))}
    if train_indices is not None:
        allowed = set(train_indices)
        seq_map = {s: [i for i in idx if i in allowed] for s, idx in seq_map.items()}
        seq_map = {s: idx for s, idx in seq_map.items() if idx}
    train_idx, val_idx = split_by_sequence(seq_map, tc_cfg.val_fraction, seed)
    if not train_idx:
        raise ValueError("no training frames")
    counts = class_counts((resize_mask(dataset[i].mask, size) for i in train_idx), k,
                          ignore_index)  # fmt: skip
    if counts.sum() == 0:
        raise ValueError(f"{getattr(dataset, 'root', None) or 'dataset'}: the training masks "
                         f"have no labelled pixels (all are ignore {ignore_index})")
    prior = torch.tensor(prior_from_counts(counts), dtype=torch.float32, device=dev)

    if state is not None:
        net = JCASNet(k, config.model)
        net.load_state_dict(state["model"])
    elif init_checkpoint is not None:
        # Fine-tuning: the architecture, input size and grid come from the checkpoint.
        init = load_checkpoint(init_checkpoint, k)
        src = Config.from_dict(init["config"], str(init_checkpoint))
        config = Config.from_dict(config.to_dict())
        config.model, config.input, config.affinity = src.model, src.input, src.affinity
        config.model.pretrained = None
        net = JCASNet(k, config.model)
        net.load_state_dict(init["model"])
    else:
        net = build_model(config, k)
    net.to(dev).train()
    model: nn.Module = net
    if world > 1:
        model = nn.parallel.DistributedDataParallel(
            net, device_ids=[dev.index] if dev.type == "cuda" else None)
    t_c, t_a = TransitionMatrix(k).to(dev), TransitionMatrix(2).to(dev)
    gen = torch.Generator().manual_seed(seed)
    scaler = torch.amp.GradScaler("cuda") if amp else None

    bs = tc_cfg.batch_size
    per_rank = math.ceil(len(train_idx) / world)
    steps_per_epoch = tc_cfg.steps_per_epoch or max(1, math.ceil(per_rank / bs))
    epochs = [1] * tc_cfg.epochs_warmup + [2] * tc_cfg.epochs_jcas
    total_steps = steps_per_epoch * len(epochs)
    history: list[dict] = []
    best_score = {1: -1.0, 2: -1.0}
    start_epoch = 0
    opt = make_optimiser(net, tc_cfg.lr, tc_cfg.optimizer)
    t_opt = make_t_optimiser(t_c, t_a, tc_cfg.t_lr, tc_cfg.t_optimizer)
    if state is not None:
        start_epoch = int(state["epoch"]) + 1
        history = list(state["history"])
        best_score = {int(s): float(v) for s, v in state["best_score"].items()}
        t_c.load_state_dict(state["t_c_state"])
        t_a.load_state_dict(state["t_a_state"])
        opt.load_state_dict(state["optimiser"])
        t_opt.load_state_dict(state["t_optimiser"])
        gen.set_state(state["generator"])

    def after_backward() -> None:
        if world > 1:
            for p in (t_c.weight, t_a.weight):
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= world

    def payload(epoch: int, stage: int, check) -> dict:
        return {
            "config": config.to_dict(), "class_names": names, "ignore_index": ignore_index,
            "model": net.state_dict(), "t_c": t_c().detach().cpu(), "t_a": t_a().detach().cpu(),
            "t_c_state": t_c.state_dict(), "t_a_state": t_a.state_dict(),
            "optimiser": opt.state_dict(), "t_optimiser": t_opt.state_dict(),
            "generator": gen.get_state(), "epoch": epoch, "stage": stage, "seed": seed,
            "history": history, "best_score": {str(s): v for s, v in best_score.items()},
            "prior": prior.cpu(), "method": method,
            "thresholds": torch.tensor(check.thresholds if check else [0.5] * k),
            "t_c_anchor": torch.tensor(check.t_anchor if check else np.eye(k)),
            "guard": {key: check.metrics[key] for key in GUARD_KEYS} if check else {},
        }  # fmt: skip

    step = start_epoch * steps_per_epoch
    messages: list[str] = []
    t_start, steps_done = time.perf_counter(), 0
    result = TrainResult(run_dir, None, None, np.eye(k), np.eye(2), history)
    for epoch in range(start_epoch, len(epochs)):
        stage = epochs[epoch]
        if stage == 2 and (epoch == 0 or epochs[epoch - 1] == 1):
            # Stage 2 starts from the best warm-up weights with fresh T and optimisers.
            _barrier()
            # Only when this run had a warm-up: a best.pt from an earlier run must not leak in.
            if tc_cfg.epochs_warmup > 0 and (ckpt_dir / "best.pt").exists():
                net.load_state_dict(load_checkpoint(ckpt_dir / "best.pt", k)["model"])
            if method == "ce":
                t_c, t_a = TransitionMatrix(k).to(dev), TransitionMatrix(2).to(dev)
            else:
                t_c, t_a = start_transitions(net, config, dataset, val_idx or train_idx, k, dev,
                                             prior.cpu().numpy(), ignore_index)  # fmt: skip
            opt = make_optimiser(net, tc_cfg.lr, tc_cfg.optimizer)
            t_opt = make_t_optimiser(t_c, t_a, tc_cfg.t_lr, tc_cfg.t_optimizer)
        stage_epochs = [e for e in range(len(epochs)) if epochs[e] == stage]
        stage_pos = (epoch - stage_epochs[0]) * steps_per_epoch
        stage_total = len(stage_epochs) * steps_per_epoch
        base = [tc_cfg.lr, 10 * tc_cfg.lr]
        order = torch.randperm(len(train_idx), generator=gen).tolist()
        flips = (torch.rand(len(order), generator=gen) < 0.5).tolist()
        mine = order[rank::world]
        sums: dict[str, float] = {}
        for s in range(steps_per_epoch):
            if should_stop is not None and should_stop():
                result.cancelled = True
                return result
            pos = [mine[(s * bs + j) % len(mine)] for j in range(bs)]
            _poly(opt, base, stage_pos + s, stage_total)
            _poly(t_opt, [tc_cfg.t_lr], stage_pos + s, stage_total)
            while True:
                x, y = load_batch(dataset, [train_idx[p] for p in pos], size,
                                  [tc_cfg.flip and flips[p] for p in pos], dev,
                                  ignore_index)  # fmt: skip
                try:
                    if method == "jcas":
                        trans = (t_c, t_a) if stage == 2 else None
                        opts = [opt, t_opt] if stage == 2 else [opt]
                        losses = jcas_step(model, x, y, config, opts, trans, prior, scaler,
                                           after_backward)  # fmt: skip
                    elif method == "volmin" and stage == 2:
                        losses = ce_step(model, x, y, config, opt, t_c, t_opt, config.loss.vol)
                    else:
                        losses = ce_step(model, x, y, config, opt)
                    break
                except torch.OutOfMemoryError:
                    if len(pos) == 1:
                        raise
                    # Out of GPU memory: halve the batch for this and every later step.
                    del x, y
                    if dev.type == "cuda":
                        torch.cuda.empty_cache()
                    bs = max(1, len(pos) // 2)
                    pos = pos[:bs]
                    messages.append(f"out of memory: batch size halved to {bs}")
                    yield TrainEvent("message", stage, epoch, len(epochs), step, total_steps,
                                     {}, np.eye(k), np.eye(2), 0.0, 0.0,
                                     {"message": messages[-1]})  # fmt: skip
            for key, v in losses.items():
                sums[key] = sums.get(key, 0.0) + v
            step += 1
            steps_done += 1
            rate = steps_done * bs * world / (time.perf_counter() - t_start)
            yield TrainEvent(
                "step", stage, epoch, len(epochs), step, total_steps, losses,
                t_c().detach().cpu().numpy() if stage == 2 else np.eye(k),
                t_a().detach().cpu().numpy() if stage == 2 else np.eye(2),
                rate, (total_steps - step) * bs * world / max(rate, 1e-9),
            )  # fmt: skip
        tcm = t_c().detach().cpu().numpy() if stage == 2 else np.eye(k)
        tam = t_a().detach().cpu().numpy() if stage == 2 else np.eye(2)
        val, check = {}, None
        if rank == 0 and val_idx:
            uses_t = stage == 2 and method != "ce"
            check = validate(net, config, dataset, val_idx, k, dev, ignore_index, refine,
                             tcm if uses_t else None, prior.cpu().numpy())  # fmt: skip
            val = check.metrics
        row = {"epoch": epoch, "stage": stage, "lr": opt.param_groups[0]["lr"],
               **{k2: v / steps_per_epoch for k2, v in sums.items()}, **val,
               "t_c": tcm.tolist(), "t_a": tam.tolist()}  # fmt: skip
        history.append(row)
        if rank == 0:
            score = val.get(SELECTION_METRIC, float(epoch))  # no val split: the latest wins
            improved = score > best_score[stage]
            if improved:
                best_score[stage] = score
            ckpt_dir.mkdir(parents=True, exist_ok=True)
            data = payload(epoch, stage, check)
            save_checkpoint(ckpt_dir / "last.pt", data)
            if improved:
                save_checkpoint(ckpt_dir / "best.pt", data)
            _write_logs(run_dir, history)
        _barrier()
        yield TrainEvent("epoch", stage, epoch, len(epochs), step, total_steps,
                         {k2: v / steps_per_epoch for k2, v in sums.items()}, tcm, tam,
                         0.0, 0.0, val)  # fmt: skip
    result.best = ckpt_dir / "best.pt" if (ckpt_dir / "best.pt").exists() else None
    result.last = ckpt_dir / "last.pt" if (ckpt_dir / "last.pt").exists() else None
    if result.best is not None:
        best = load_checkpoint(result.best, k)
        result.t_c, result.t_a = best["t_c"].numpy(), best["t_a"].numpy()
    return result


__all__ = ["CheckpointError", "TrainEvent", "TrainResult", "train", "run_sync", "jcas_step",
           "ce_step", "make_optimiser", "make_t_optimiser", "split_by_sequence", "validate",
           "start_transitions",
           "pick_device", "load_batch"]  # fmt: skip
