"""The end of a training epoch: validation, model selection, checkpoints and logs.

Model selection uses only the noisy masks of the held-out split (``SELECTION_METRIC``; see
``core.train``). Rank 0 validates and writes; every rank meets at the barrier.
"""

from __future__ import annotations

import numpy as np
import torch

from jcas_napari.core import device as devices
from jcas_napari.core.checkpoint import load_checkpoint, save_checkpoint
from jcas_napari.core.events import TrainEvent, TrainResult, write_logs
from jcas_napari.core.validate import validate

SELECTION_METRIC = "val_noisy_acc"
GUARD_KEYS = ("val_nll", "prior_nll", "val_gain", "temperature")


def validate_and_checkpoint(run, epoch: int, sums: dict) -> TrainEvent:
    """Validate (rank 0), log, and write last.pt (and best.pt when it improved); ``run`` is
    the :class:`jcas_napari.core.train.Trainer`."""
    stage = run.epochs[epoch]
    tcm, tam = run.matrices(stage)
    val, check = {}, None
    if run.rank == 0 and run.val_idx:
        uses_t = stage == 2 and run.method != "ce"
        check = validate(
            run.net,
            run.config,
            run.dataset,
            run.val_idx,
            run.k,
            run.dev,
            run.ignore,
            run.method == "jcas",
            tcm if uses_t else None,
            run.prior.cpu().numpy(),
        )
        val = check.metrics
    means = {k2: v / run.steps_per_epoch for k2, v in sums.items()}
    run.history.append(
        {
            "epoch": epoch,
            "stage": stage,
            "lr": run.opt.param_groups[0]["lr"],
            **means,
            **val,
            "t_c": tcm.tolist(),
            "t_a": tam.tolist(),
        }
    )
    if run.rank == 0:
        score = val.get(SELECTION_METRIC, float(epoch))  # no val split: the latest wins
        improved = score > run.best_score[stage]
        if improved:
            run.best_score[stage] = score
        run.ckpt_dir.mkdir(parents=True, exist_ok=True)
        data = checkpoint_payload(run, epoch, stage, check)
        save_checkpoint(run.ckpt_dir / "last.pt", data)
        if improved:
            save_checkpoint(run.ckpt_dir / "best.pt", data)
        write_logs(run.run_dir, run.history)
    devices.barrier()
    return TrainEvent(
        "epoch",
        stage,
        epoch,
        len(run.epochs),
        run.step,
        run.total_steps,
        means,
        tcm,
        tam,
        0.0,
        0.0,
        val,
    )


def checkpoint_payload(run, epoch: int, stage: int, check) -> dict:
    """Everything a checkpoint holds: weights, T, optimisers, history and the guard."""
    k = run.k
    return {
        "config": run.config.to_dict(),
        "class_names": run.names,
        "ignore_index": run.ignore,
        "model": run.net.state_dict(),
        "t_c": run.t_c().detach().cpu(),
        "t_a": run.t_a().detach().cpu(),
        "t_c_state": run.t_c.state_dict(),
        "t_a_state": run.t_a.state_dict(),
        "optimiser": run.opt.state_dict(),
        "t_optimiser": run.t_opt.state_dict(),
        "generator": run.gen.get_state(),
        "epoch": epoch,
        "stage": stage,
        "schedule": list(run.epochs),
        "seed": run.seed,
        "history": run.history,
        "best_score": {str(s): v for s, v in run.best_score.items()},
        "prior": run.prior.cpu(),
        "method": run.method,
        "thresholds": torch.tensor(check.thresholds if check else [0.5] * k),
        "t_c_anchor": torch.tensor(check.t_anchor if check else np.eye(k)),
        "guard": {key: check.metrics[key] for key in GUARD_KEYS} if check else {},
        "trained_on": dict(run.trained_on),
    }


def restore(run, st: dict) -> None:
    """Put a :class:`jcas_napari.core.train.Trainer` back where checkpoint ``st`` (from
    :func:`checkpoint_payload`) left it: next epoch, schedule, history, T and optimisers."""
    run.start_epoch = int(st["epoch"]) + 1
    run.epochs = list(st.get("schedule", run.epochs))  # stage 2 may have been stretched
    run.history = list(st["history"])
    run.best_score = {int(s): float(v) for s, v in st["best_score"].items()}
    run.t_c.load_state_dict(st["t_c_state"])
    run.t_a.load_state_dict(st["t_a_state"])
    run.opt.load_state_dict(st["optimiser"])
    run.t_opt.load_state_dict(st["t_optimiser"])
    run.gen.set_state(st["generator"])


def train_result(run, cancelled: bool = False) -> TrainResult:
    """The run's outcome: its folder, best and last checkpoints and the best T."""
    res = TrainResult(run.run_dir, None, None, np.eye(run.k), np.eye(2), run.history, cancelled)
    if cancelled:
        return res
    best, last = run.ckpt_dir / "best.pt", run.ckpt_dir / "last.pt"
    res.best, res.last = (best if best.exists() else None), (last if last.exists() else None)
    if res.best is not None:
        ck = load_checkpoint(res.best, run.k)
        res.t_c, res.t_a = ck["t_c"].numpy(), ck["t_a"].numpy()
    return res
