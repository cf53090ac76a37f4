"""What ``jcas train`` and ``jcas run`` check before they train into a run folder.

A run folder holds ``checkpoints/last.pt`` and ``best.pt`` (one model) or
``fold<k>/checkpoints/`` (one model per fold, ``jcas run``). Training into it again would
replace them silently, and ``--resume`` takes the config and the seed from ``last.pt``, so
flags that differ from them would be ignored silently. Both are refused here, in one line
that says what to do. The same request also writes the exact command that resumes it.
"""

from __future__ import annotations

import atexit
import shlex
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from jcas_napari.core.checkpoint import (
    CheckpointError,
    check_checkpoint,
    load_checkpoint,
    model_from_checkpoint,
)
from jcas_napari.core.config import Config, load_config

CHECKPOINT_NAMES = ("last.pt", "best.pt")
# What a checkpoint needs to continue training (an exported model has none of it).
RESUME_KEYS = (
    "seed",
    "epoch",
    "history",
    "best_score",
    "optimiser",
    "t_optimiser",
    "t_c_state",
    "t_a_state",
    "generator",
)


@dataclass
class Request:
    """A ``jcas train`` or ``jcas run`` command line, as given (None: not given)."""

    command: str  # "train" or "run"
    dataset: Path
    out: Path
    config: str | None = None
    epochs_warmup: int | None = None
    epochs_jcas: int | None = None
    device: str = "auto"
    seed: int | None = None
    init: str | None = None
    folds: int | None = None  # run only
    threshold: float | None = None  # run only

    @property
    def run_root(self) -> Path:
        """Where the checkpoints go: OUT for train, OUT/run for run."""
        return self.out if self.command == "train" else self.out / "run"

    def command_line(self, resume: bool) -> str:
        """The shell command that repeats this request (``--resume``: continues it)."""
        args = ["jcas", self.command, str(self.dataset), "--out", str(self.out)]
        for flag, value in (
            ("--config", self.config),
            ("--epochs-warmup", self.epochs_warmup),
            ("--epochs-jcas", self.epochs_jcas),
            ("--seed", self.seed),
            ("--init", self.init),
            ("--folds", self.folds),
            ("--threshold", self.threshold),
        ):
            if value is not None:
                args += [flag, str(value)]
        if self.device != "auto":
            args += ["--device", self.device]
        return shlex.join(args + (["--resume"] if resume else []))


@dataclass
class Plan:
    """What training gets after the checks: config, seed, starting point, files to drop."""

    config: Config
    seed: int
    init: Path | None
    discard: list[Path] = field(default_factory=list)  # --overwrite: the old checkpoints


def saved_checkpoints(root: Path) -> list[Path]:
    """Every checkpoints/{last,best}.pt of the run at ``root`` and of its fold folders."""
    folders = [root, *sorted(root.glob("fold*"))] if root.is_dir() else []
    return [
        f / "checkpoints" / n
        for f in folders
        for n in CHECKPOINT_NAMES
        if (f / "checkpoints" / n).is_file()
    ]


def requested_config(req: Request) -> Config:
    """The config named by --config (default small) with the --epochs-* overrides."""
    cfg = load_config(req.config or "small")
    if req.epochs_warmup is not None:
        cfg.train.epochs_warmup = req.epochs_warmup
    if req.epochs_jcas is not None:
        cfg.train.epochs_jcas = req.epochs_jcas
    if cfg.train.epochs_warmup + cfg.train.epochs_jcas == 0:
        raise ValueError(
            f"nothing to train: config {req.config or 'small'} with "
            "epochs_warmup 0 and epochs_jcas 0; give at least one epoch"
        )
    return cfg


def check_run_folder(req: Request, resume: bool, overwrite: bool) -> list[Path]:
    """Refuse to replace a trained run silently or to resume nothing; returns the
    checkpoints that ``overwrite`` replaces."""
    if resume and overwrite:
        raise ValueError(
            "--resume continues the run in OUT, --overwrite starts a new one "
            "in its place: choose one"
        )
    found = saved_checkpoints(req.run_root)
    if resume and not any(p.name == "last.pt" for p in found):
        raise ValueError(
            f"{req.run_root}: nothing to resume (no checkpoints/last.pt); run "
            "without --resume to start training"
        )
    if found and not resume and not overwrite:
        raise ValueError(
            f"{found[0]}: OUT already holds a trained run; pass --resume to "
            "continue it, or --overwrite to train a new one in its place"
        )
    return [] if resume else found


def check_fold_layout(req: Request, folds: int) -> None:
    """``jcas run --resume``: the saved run must have as many folds as this one."""
    root = req.run_root
    found = saved_checkpoints(root)
    single = any(p.parents[1] == root for p in found)
    indices = [
        int(p.parents[1].name[4:])
        for p in found
        if p.parents[1] != root and p.parents[1].name[4:].isdigit()
    ]
    if (folds == 1 and indices) or (folds > 1 and (single or max(indices, default=0) >= folds)):
        saved = "one model" if single else f"{max(indices) + 1} or more folds"
        raise ValueError(
            f"{root}: the saved run was trained with {saved}, this command "
            f"would use {folds}; resume with that run's --folds"
        )


def _differences(mine: dict, saved: dict, prefix: str, label: str = "saved") -> list[str]:
    return [
        f"{prefix}{k} {mine[k]!r} ({label}: {saved.get(k)!r})"
        for k in mine
        if k != "pretrained" and mine[k] != saved.get(k)
    ]


def check_resume(
    req: Request, last: Path, num_classes: int, say: Callable[[str], None] = print
) -> tuple[Config, int]:
    """The saved run's config and seed, after checking that ``last`` can continue and
    that no flag asks for something the resumed run would not do."""
    ckpt = load_checkpoint(last, num_classes)
    model_from_checkpoint(ckpt, last)  # the weights must fit the saved config
    if any(k not in ckpt for k in RESUME_KEYS):
        raise CheckpointError(
            last,
            "has no training state (an exported model?); it cannot "
            "be resumed: train into a new --out, with --init it",
        )
    saved, seed = Config.from_dict(ckpt["config"], f"{last} config"), int(ckpt["seed"])
    diffs: list[str] = []
    if req.config is not None:
        mine = requested_config(req)
        for section in ("train", "loss"):
            diffs += _differences(
                asdict(getattr(mine, section)), asdict(getattr(saved, section)), f"{section}."
            )
        # Not refused: a fine-tuned run saved its --init's architecture, not the config's.
        if any(
            _differences(asdict(getattr(mine, s)), asdict(getattr(saved, s)), "")
            for s in ("model", "input", "affinity")
        ):
            say(f"{last}: the model, input size and grid come from the saved run")
    else:
        given = {"--epochs-warmup": req.epochs_warmup, "--epochs-jcas": req.epochs_jcas}
        had = {
            "--epochs-warmup": saved.train.epochs_warmup,
            "--epochs-jcas": saved.train.epochs_jcas,
        }
        diffs += _differences({k: v for k, v in given.items() if v is not None}, had, "")
    if req.seed is not None and req.seed != seed:
        diffs.append(f"--seed {req.seed} (saved: {seed})")
    if diffs:
        more = f" and {len(diffs) - 3} more" if len(diffs) > 3 else ""
        raise ValueError(
            f"{last}: --resume continues the saved run with the config and seed "
            f"saved in it, but {', '.join(diffs[:3])}{more}; drop those flags, "
            "or train into a new --out to change them"
        )
    return saved, seed


def init_checkpoint(
    req: Request, cfg: Config, num_classes: int, say: Callable[[str], None]
) -> Path | None:
    """--init resolved ('shipped' by default) and checked; notes what the checkpoint
    overrides in the config (fine-tuning keeps the checkpoint's architecture)."""
    from jcas_napari.assets import resolve_init

    name = req.config or "small"
    path = resolve_init(req.init, Path(name).stem if name.endswith(".yaml") else name)
    if req.init in (None, "shipped") and path is None:
        say(
            f"the shipped model is a 'small' model; config {name} starts from its own "
            "initialisation"
        )
    if path is None:
        return None
    src = check_checkpoint(path, num_classes)
    diffs = [
        d
        for s in ("model", "input", "affinity")
        for d in _differences(
            asdict(getattr(cfg, s)), asdict(getattr(src, s)), f"{s}.", "checkpoint"
        )
    ]
    if diffs:
        say(
            f"fine-tuning {path}: the model, input size and grid come from the checkpoint, "
            f"not from config {name} ({'; '.join(diffs[:3])}{' ...' if len(diffs) > 3 else ''}"
            "); the config's train and loss settings apply"
        )
    return path


def plan_training(
    req: Request,
    num_classes: int,
    *,
    resume: bool,
    overwrite: bool,
    folds: int = 1,
    say: Callable[[str], None] = print,
) -> Plan:
    """Every check before training; raises ValueError (or CheckpointError) with one line."""
    discard = check_run_folder(req, resume, overwrite)
    if not resume:
        cfg = requested_config(req)
        plan = Plan(cfg, req.seed or 0, init_checkpoint(req, cfg, num_classes, say), discard)
        resolved = {p.resolve() for p in discard}
        if plan.init is not None and plan.init.resolve() in resolved:
            raise ValueError(
                f"{plan.init}: --init names a checkpoint that --overwrite would "
                "replace; copy it elsewhere first"
            )
        return plan
    if req.command == "run":
        check_fold_layout(req, folds)
    lasts = [p for p in saved_checkpoints(req.run_root) if p.name == "last.pt"]
    saved, seed = check_resume(req, lasts[0], num_classes, say)
    for other in lasts[1:]:
        check_resume(req, other, num_classes, lambda _: None)  # one note is enough
    if req.command == "train":  # everything comes from last.pt
        return Plan(saved, seed, None)
    # jcas run: folds that never started train as a new run would, with this run's seed.
    cfg = requested_config(req) if req.config is not None else saved
    return Plan(cfg, seed, init_checkpoint(req, cfg, num_classes, say))


def interrupted_line(req: Request) -> str:
    """One line for Ctrl-C: the exact command that continues (or restarts) the run."""
    if any(p.name == "last.pt" for p in saved_checkpoints(req.run_root)):
        return f"interrupted; resume with: {req.command_line(resume=True)}"
    return (
        "interrupted before the first epoch ended (nothing saved); start again with: "
        f"{req.command_line(resume=False)}"
    )


def init_distributed() -> None:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1)."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
        # Leave the group before the interpreter exits: a rank that exits with the group
        # still alive can abort in the backend's destructor ("terminate called without an
        # active exception"), which torchrun reports as a failed run.
        atexit.register(_leave_group)


def _leave_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def drive(gen, desc: str = "train"):
    """Run a training generator with a progress bar (rank 0 only); returns its result."""
    from tqdm import tqdm

    from jcas_napari.core.device import rank
    from jcas_napari.core.train import run_sync

    bar = tqdm(unit="step", desc=desc, disable=rank() != 0)

    def show(ev) -> None:
        bar.total = ev.steps_total
        if ev.kind == "step":
            bar.n = ev.step
            bar.set_postfix(stage=ev.stage, epoch=ev.epoch, loss=f"{ev.losses['total']:.3f}")
        elif ev.kind == "message":
            bar.write(f"note: {ev.val['message']}")
        elif ev.val:
            bar.write(
                f"epoch {ev.epoch} (stage {ev.stage}): "
                + ", ".join(f"{k} {v:.3f}" for k, v in ev.val.items())
            )
        bar.refresh()

    try:
        result = run_sync(gen, show)
    finally:
        bar.close()
    if rank() == 0 and bar.total is None:  # no event at all: every epoch was done before
        tqdm.write("nothing left to train: every epoch of this run was already done")
    return result
