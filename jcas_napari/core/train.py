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

import math
import os
import time
from collections.abc import Callable, Generator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from jcas_napari import ENDOVIS_PART_CLASSES
from jcas_napari.core import device as devices
from jcas_napari.core.batches import (
    batch_loader,
    fold_splits,
    load_batch,
    sequence_map,
    split_by_sequence,
    training_masks,
)
from jcas_napari.core.checkpoint import CheckpointError, load_checkpoint
from jcas_napari.core.config import Config
from jcas_napari.core.device import pick_device
from jcas_napari.core.epoch_end import restore, train_result, validate_and_checkpoint
from jcas_napari.core.events import TrainEvent, TrainResult, run_sync
from jcas_napari.core.model import JCASNet, build_model
from jcas_napari.core.steps import (
    ce_step,
    jcas_step,
    make_optimiser,
    make_t_optimiser,
    stage2_epochs,
    start_transitions,
    stretch_stage2,
)
from jcas_napari.core.transitions import (
    TransitionMatrix,
    class_counts,
    clean_prior_from_noisy,
    label_signal,
    prior_from_counts,
)
from jcas_napari.core.validate import validate
from jcas_napari.data.io import remove_stale_temp_files

METHODS = ("jcas", "ce", "volmin")
VOLMIN_WEIGHT = 0.5  # the baseline's volume term (JCAS's own ``loss.vol`` defaults to 0)


def _poly(opt: torch.optim.Optimizer, base: list[float], it: int, total: int) -> float:
    factor = (1 - min(it, total - 1) / max(total, 1)) ** 0.9
    for group, lr in zip(opt.param_groups, base):
        group["lr"] = lr * factor
    return factor


class Trainer:
    """The state of one training run, with its steps named: ``setup`` (in __init__),
    ``start_stage`` and ``run_epoch``; ``core.epoch_end.validate_and_checkpoint`` ends
    each epoch. ``train`` drives it."""

    def __init__(
        self,
        dataset: Sequence,
        config: Config,
        run_dir: Path,
        *,
        names: list[str],
        ignore_index: int,
        device: str,
        seed: int,
        resume: bool,
        init_checkpoint,
        train_indices,
        method: str,
    ) -> None:
        self.dataset, self.run_dir, self.method = dataset, run_dir, method
        self.ckpt_dir = run_dir / "checkpoints"
        self.names, self.k, self.ignore = names, len(names), ignore_index
        self.dev = pick_device(device)
        self.rank, self.world = devices.rank(), devices.world()
        self.state = None
        if self.rank == 0:
            remove_stale_temp_files(run_dir)  # left by a writer that was killed mid-write
        if resume and (self.ckpt_dir / "last.pt").exists():
            self.state = load_checkpoint(self.ckpt_dir / "last.pt", self.k)
            config = Config.from_dict(self.state["config"], "checkpoint config")
            seed = int(self.state["seed"])
        self.config, self.seed = config, seed
        torch.manual_seed(seed)
        self._split(train_indices)
        self._build_model(init_checkpoint)
        self._schedule()

    def _split(self, train_indices) -> None:
        seq_map = sequence_map(self.dataset)
        if train_indices is not None:
            allowed = set(train_indices)
            seq_map = {s: [i for i in idx if i in allowed] for s, idx in seq_map.items()}
            seq_map = {s: idx for s, idx in seq_map.items() if idx}
        self.train_idx, self.val_idx = split_by_sequence(
            seq_map, self.config.train.val_fraction, self.seed
        )
        if not self.train_idx:
            raise ValueError("no training frames")
        self.size = (self.config.input.height, self.config.input.width)
        self.trained_on: dict[str, str] = {}  # id -> content fingerprint, for the cleaning rule
        masks = training_masks(self.dataset, self.train_idx, self.size, self.trained_on)
        counts = class_counts(masks, self.k, self.ignore)
        if counts.sum() == 0:
            where = getattr(self.dataset, "root", None) or "dataset"
            raise ValueError(
                f"{where}: the training masks have no labelled pixels "
                f"(all are ignore {self.ignore})"
            )
        self.prior = torch.tensor(prior_from_counts(counts), dtype=torch.float32, device=self.dev)

    def _build_model(self, init_checkpoint) -> None:
        if self.state is not None:
            net = JCASNet(self.k, self.config.model)
            net.load_state_dict(self.state["model"])
        elif init_checkpoint is not None:
            # Fine-tuning: the architecture, input size and grid come from the checkpoint.
            init = load_checkpoint(init_checkpoint, self.k)
            src = Config.from_dict(init["config"], str(init_checkpoint))
            config = Config.from_dict(self.config.to_dict())
            config.model, config.input, config.affinity = src.model, src.input, src.affinity
            config.model.pretrained = None
            self.config, self.size = config, (src.input.height, src.input.width)
            net = JCASNet(self.k, config.model)
            net.load_state_dict(init["model"])
        else:
            net = build_model(self.config, self.k)
        self.net = net.to(self.dev).train()
        self.model: nn.Module = net
        if self.world > 1:
            ids = [self.dev.index] if self.dev.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(net, device_ids=ids)
        self.scaler = torch.amp.GradScaler("cuda") if self.dev.type == "cuda" else None

    def _schedule(self) -> None:
        tc = self.config.train
        self.bs = tc.batch_size
        per_rank = math.ceil(len(self.train_idx) / self.world)
        self.steps_per_epoch = tc.steps_per_epoch or max(1, math.ceil(per_rank / self.bs))
        jcas, self.note = stage2_epochs(tc.epochs_jcas, tc.min_steps_jcas, self.steps_per_epoch)
        self.epochs = [1] * tc.epochs_warmup + [2] * jcas
        self.history: list[dict] = []
        self.best_score = {1: -1.0, 2: -1.0}
        self.start_epoch = 0
        self.gen = torch.Generator().manual_seed(self.seed)
        self.t_c, self.t_a = TransitionMatrix(self.k).to(self.dev), TransitionMatrix(2).to(self.dev)
        self.opt = make_optimiser(self.net, tc.lr, tc.optimizer)
        self.t_opt = make_t_optimiser(self.t_c, self.t_a, tc.t_lr, tc.t_optimizer)
        if self.state is not None:
            restore(self, self.state)
        self.step = self.start_epoch * self.steps_per_epoch
        self.t_start, self.steps_done = time.perf_counter(), 0

    @property
    def total_steps(self) -> int:  # of the whole schedule, stage 2 stretched or not
        return self.steps_per_epoch * len(self.epochs)

    def start_stage(self, epoch: int) -> str | None:
        """At the first stage-2 epoch: the best warm-up weights, fresh T and optimisers, and
        stage 2 stretched where T_C says the labels are heavily flipped (returns the note)."""
        if self.epochs[epoch] != 2 or (epoch > 0 and self.epochs[epoch - 1] == 2):
            return None
        devices.barrier()
        tc = self.config.train
        # Only when this run had a warm-up: a best.pt from an earlier run must not leak in.
        if tc.epochs_warmup > 0 and (self.ckpt_dir / "best.pt").exists():
            self.net.load_state_dict(load_checkpoint(self.ckpt_dir / "best.pt", self.k)["model"])
        if self.method == "ce":
            self.t_c = TransitionMatrix(self.k).to(self.dev)
            self.t_a = TransitionMatrix(2).to(self.dev)
        else:
            self.t_c, self.t_a = start_transitions(
                self.net,
                self.config,
                self.dataset,
                self.val_idx or self.train_idx,
                self.k,
                self.dev,
                self.prior.cpu().numpy(),
                self.ignore,
                self.method == "jcas",
            )
        self.opt = make_optimiser(self.net, tc.lr, tc.optimizer)
        self.t_opt = make_t_optimiser(self.t_c, self.t_a, tc.t_lr, tc.t_optimizer)
        if self.method == "ce" or not tc.stretch_stage2:
            return None
        t = self.t_c().detach().cpu().numpy()
        signal = label_signal(t, clean_prior_from_noisy(self.prior.cpu().numpy(), t))
        self.epochs, note = stretch_stage2(self.epochs, devices.rank0_value(signal))
        return note

    def matrices(self, stage: int) -> tuple[np.ndarray, np.ndarray]:
        if stage == 1:
            return np.eye(self.k), np.eye(2)
        return self.t_c().detach().cpu().numpy(), self.t_a().detach().cpu().numpy()

    def _after_backward(self) -> None:
        if self.world > 1:
            for p in (self.t_c.weight, self.t_a.weight):
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= self.world

    def _step(self, stage: int, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        cfg = self.config
        if self.method == "jcas":
            trans = (self.t_c, self.t_a) if stage == 2 else None
            opts = [self.opt, self.t_opt] if stage == 2 else [self.opt]
            return jcas_step(
                self.model, x, y, cfg, opts, trans, self.prior, self.scaler, self._after_backward
            )
        if self.method == "volmin" and stage == 2:
            return ce_step(
                self.model, x, y, cfg, self.opt, self.t_c, self.t_opt, VOLMIN_WEIGHT, self.scaler
            )
        return ce_step(self.model, x, y, cfg, self.opt, scaler=self.scaler)

    def _plan(self, mine: list[int], flips: list[bool], first: int) -> list:
        bs, tc = self.bs, self.config.train
        return [
            [
                (self.train_idx[p], tc.flip and flips[p])
                for p in (mine[(s * bs + j) % len(mine)] for j in range(bs))
            ]
            for s in range(first, self.steps_per_epoch)
        ]

    def _halve(self, plan_item: list, stage: int, epoch: int) -> TrainEvent:
        """Out of GPU memory: halve the batch for this and every later step."""
        if len(plan_item) == 1:
            raise torch.OutOfMemoryError("out of memory at batch size 1")
        if self.dev.type == "cuda":
            torch.cuda.empty_cache()
        self.bs = max(1, len(plan_item) // 2)
        return self.message(stage, epoch, f"out of memory: batch size halved to {self.bs}")

    def message(self, stage: int, epoch: int, text: str) -> TrainEvent:
        """A note for the user: the GUI shows it, the CLI prints it."""
        where = (stage, epoch, len(self.epochs), self.step, self.total_steps)
        eyes = (np.eye(self.k), np.eye(2))
        return TrainEvent("message", *where, {}, *eyes, 0.0, 0.0, {"message": text})

    def run_epoch(self, epoch: int, should_stop) -> Generator[TrainEvent, None, dict | None]:
        """One epoch of steps; returns the summed losses, or None when cancelled."""
        stage, tc = self.epochs[epoch], self.config.train
        stage_epochs = [e for e in range(len(self.epochs)) if self.epochs[e] == stage]
        stage_pos = (epoch - stage_epochs[0]) * self.steps_per_epoch
        stage_total = len(stage_epochs) * self.steps_per_epoch
        order = torch.randperm(len(self.train_idx), generator=self.gen).tolist()
        flips = (torch.rand(len(order), generator=self.gen) < 0.5).tolist()
        mine = order[self.rank :: self.world]
        sums: dict[str, float] = {}
        plan, s0 = self._plan(mine, flips, 0), 0
        batches = iter(batch_loader(self.dataset, plan, self.size, self.dev, self.ignore))
        for s in range(self.steps_per_epoch):
            if should_stop is not None and should_stop():
                return None
            _poly(self.opt, [tc.lr, 10 * tc.lr], stage_pos + s, stage_total)
            _poly(self.t_opt, [tc.t_lr], stage_pos + s, stage_total)
            x, y = next(batches)
            while True:
                try:
                    losses = self._step(stage, x.to(self.dev), y.to(self.dev))
                    break
                except torch.OutOfMemoryError:
                    yield self._halve(plan[s - s0], stage, epoch)
                    x, y = x[: self.bs], y[: self.bs]
                    plan, s0 = self._plan(mine, flips, s + 1), s + 1
                    batches = iter(
                        batch_loader(self.dataset, plan, self.size, self.dev, self.ignore)
                    )
            for key, v in losses.items():
                sums[key] = sums.get(key, 0.0) + v
            yield self._step_event(stage, epoch, losses)
        return sums

    def _step_event(self, stage: int, epoch: int, losses: dict) -> TrainEvent:
        self.step += 1
        self.steps_done += 1
        n = self.bs * self.world
        rate = self.steps_done * n / (time.perf_counter() - self.t_start)
        t_c, t_a = self.matrices(stage)
        return TrainEvent(
            "step",
            stage,
            epoch,
            len(self.epochs),
            self.step,
            self.total_steps,
            losses,
            t_c,
            t_a,
            rate,
            (self.total_steps - self.step) * n / max(rate, 1e-9),
        )


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
    the volume term at 0.5; no affinity branch, no DAR).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    dataset_names = getattr(getattr(dataset, "classes", None), "names", None)
    names = list(class_names or dataset_names or ENDOVIS_PART_CLASSES)
    run = Trainer(
        dataset,
        config,
        Path(run_dir),
        names=names,
        ignore_index=ignore_index,
        device=device,
        seed=seed,
        resume=resume,
        init_checkpoint=init_checkpoint,
        train_indices=train_indices,
        method=method,
    )
    if run.note and run.start_epoch == 0:
        yield run.message(run.epochs[0], 0, run.note)
    epoch = run.start_epoch
    while epoch < len(run.epochs):  # start_stage may lengthen the schedule
        note = run.start_stage(epoch)
        if note:
            yield run.message(2, epoch, note)
        sums = yield from run.run_epoch(epoch, should_stop)
        if sums is None:
            return train_result(run, cancelled=True)
        yield validate_and_checkpoint(run, epoch, sums)
        epoch += 1
    return train_result(run)


__all__ = [
    "CheckpointError",
    "TrainEvent",
    "TrainResult",
    "Trainer",
    "train",
    "run_sync",
    "jcas_step",
    "ce_step",
    "make_optimiser",
    "make_t_optimiser",
    "split_by_sequence",
    "fold_splits",
    "validate",
    "pick_device",
    "load_batch",
    "start_transitions",
]
