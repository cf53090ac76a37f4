"""The ``jcas`` training commands: train, clean and run (resume, Ctrl-C, torchrun)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer

from jcas_napari.cli_common import errors as _errors
from jcas_napari.cli_common import fail as _fail
from jcas_napari.cli_common import note as _note

if TYPE_CHECKING:
    from jcas_napari.cli_runs import Plan, Request
    from jcas_napari.data.io import Dataset

T = TypeVar("T")


def _open_for_writing(req: Request) -> Dataset:
    """Join torchrun's group, check --device, open the dataset and refuse an OUT that
    overlaps it (resolved: symlinks and '..' included)."""
    from jcas_napari.cli_runs import init_distributed
    from jcas_napari.core.device import pick_device
    from jcas_napari.data.fsutil import check_output_dir
    from jcas_napari.data.io import open_dataset

    init_distributed()
    pick_device(req.device)  # an unknown device fails here, in one line
    ds = open_dataset(req.dataset)
    check_output_dir(req.out, ds.root)
    return ds


def _planned(req: Request, ds: Dataset, resume: bool, overwrite: bool, folds: int = 1) -> Plan:
    """Every check before training; then (rank 0) drops what --overwrite replaces."""
    from jcas_napari.cli_runs import plan_training
    from jcas_napari.core import device as devices

    plan = plan_training(
        req, ds.classes.num_classes, resume=resume, overwrite=overwrite, folds=folds, say=_note
    )
    if plan.discard and devices.rank() == 0:
        for path in plan.discard:
            path.unlink(missing_ok=True)
    devices.barrier()
    return plan


def _guarded(req: Request, work: Callable[[], T]) -> T:
    """``work()``, with user errors as one line (exit 2) and Ctrl-C as the one line that
    says how to resume (exit 130, the shell's code for SIGINT)."""
    from jcas_napari.cli_runs import interrupted_line
    from jcas_napari.core import device as devices

    try:
        return work()
    except KeyboardInterrupt:
        if devices.rank() == 0:
            typer.secho(interrupted_line(req), fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(code=130) from None
    except _errors() as exc:
        _fail(str(exc))


def train_cmd(
    dataset: Path = typer.Argument(..., help="Dataset folder (images/, masks/)."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Run folder: checkpoints, metrics (outside DATASET)."
    ),
    config: str = typer.Option(None, help="small (default), deeplab-r101, or a .yaml path."),
    epochs_warmup: int = typer.Option(None, min=0, help="Stage-1 epochs (default: config)."),
    epochs_jcas: int = typer.Option(None, min=0, help="Stage-2 epochs (default: config)."),
    device: str = typer.Option("auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda."),
    seed: int = typer.Option(
        None, help="Random seed (default 0); the same seed gives the same model on CPU."
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue the run in OUT from OUT/checkpoints/last.pt, with the config saved there.",
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace the trained run already in OUT (its checkpoints are deleted).",
    ),
    init: str = typer.Option(
        None,
        help="Start from: 'shipped' (the shipped model, "
        "default), 'none' (the config's own init), or a checkpoint path.",
    ),
) -> None:
    """Train JCAS on a dataset's noisy masks (stage 1 warm-up, stage 2 JCAS)."""
    from jcas_napari.cli_runs import Request

    req = Request("train", dataset, out, config, epochs_warmup, epochs_jcas, device, seed, init)
    result = _guarded(req, lambda: _train(req, resume, overwrite))
    typer.echo(f"best model: {result.best}")


def _train(req: Request, resume: bool, overwrite: bool):
    from jcas_napari.cli_runs import drive
    from jcas_napari.core.train import train

    ds = _open_for_writing(req)
    plan = _planned(req, ds, resume, overwrite)
    return drive(
        train(
            ds,
            plan.config,
            req.out,
            device=req.device,
            seed=plan.seed,
            resume=resume,
            init_checkpoint=plan.init,
        )
    )


def _clean_into(ds, models, out: Path, threshold, device) -> None:
    from tqdm import tqdm

    from jcas_napari.batch import clean_to_folder
    from jcas_napari.core.device import rank

    notes: list[str] = []
    # Under torchrun every rank cleans a share; rank 0 counts them all and reports.
    with tqdm(total=len(ds), unit="frame", desc="clean", disable=rank() != 0) as bar:
        rows = clean_to_folder(
            ds, models, out, threshold=threshold, device=device, progress=bar.update, notes=notes
        )
    if rank() != 0:
        return
    for note in notes:
        typer.echo(f"warning: {note}", err=True)
    skipped = len(rows) - bar.n
    note = f" ({skipped} frames already done by an earlier run were kept)" if skipped else ""
    changed = sum(r["changed_fraction"] > 0 for r in rows)
    typer.echo(
        f"wrote {len(rows)} cleaned masks ({changed} with proposed changes) to "
        f"{out / 'masks'}{note}; report: {out / 'report.md'}"
    )


def clean_cmd(
    dataset: Path = typer.Argument(..., help="Dataset folder to clean (never written to)."),
    model: Path = typer.Option(..., "--model", "-m", help="Checkpoint (RUN/checkpoints/best.pt)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (outside DATASET)."),
    threshold: float = typer.Option(
        None,
        min=0.0,
        max=1.0,
        help="Change a pixel only if the posterior probability that its label is wrong "
        "(and the proposed class right) reaches this. Default 0.5 (see docs/method.md).",
    ),
    device: str = typer.Option("auto", help="auto, cpu, cuda."),
) -> None:
    """Propose corrected masks: OUT/masks, changes, confidence, scores.csv, report.md."""
    from jcas_napari.cli_runs import init_distributed
    from jcas_napari.core.checkpoint import load_checkpoint
    from jcas_napari.core.device import pick_device
    from jcas_napari.data.io import open_dataset
    from jcas_napari.output_state import check_clean_output

    try:
        init_distributed()  # under torchrun: the ranks share the frames
        pick_device(device)  # an unknown device fails before any work, in one line
        ds = open_dataset(dataset)
        check_clean_output(out, ds)
        # A bad checkpoint fails here, in one line, before OUT or a progress bar exists.
        load_checkpoint(model, ds.classes.num_classes)
        _clean_into(ds, [(model, None)], out, threshold, device)
    except _errors() as exc:
        _fail(str(exc))


def run_cmd(
    dataset: Path = typer.Argument(..., help="Dataset folder (never written to)."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output folder: run/ and the cleaning (outside DATASET)."
    ),
    config: str = typer.Option(None, help="small (default), deeplab-r101, or a .yaml path."),
    epochs_warmup: int = typer.Option(None, min=0, help="Stage-1 epochs (default: config)."),
    epochs_jcas: int = typer.Option(None, min=0, help="Stage-2 epochs (default: config)."),
    folds: int = typer.Option(
        None,
        min=1,
        help="K > 1: train K models, clean each fold "
        "with the model that did not see it (out-of-sample; needs K sequences). "
        "Default 1 (in-sample): on 48-120 frames out-of-sample cleaned worse.",
    ),
    threshold: float = typer.Option(
        None, min=0.0, max=1.0, help="As for jcas clean: the posterior a change needs (0.5)."
    ),
    device: str = typer.Option("auto", help="auto, cpu, cuda."),
    seed: int = typer.Option(None, help="Random seed (default 0)."),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue the training in OUT/run (configs saved there), then finish the cleaning.",
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace the trained run(s) already in OUT/run (their checkpoints are deleted).",
    ),
    init: str = typer.Option(None, help="'shipped' (default), 'none', or a checkpoint."),
) -> None:
    """Train, then clean, in one go (the same core pipeline as the napari plugin)."""
    from jcas_napari.cli_runs import Request

    req = Request(
        "run",
        dataset,
        out,
        config,
        epochs_warmup,
        epochs_jcas,
        device,
        seed,
        init,
        folds,
        threshold,
    )
    _guarded(req, lambda: _run(req, resume, overwrite))


def _run(req: Request, resume: bool, overwrite: bool) -> None:
    from jcas_napari.cli_runs import drive
    from jcas_napari.core.pipeline import choose_folds, fit
    from jcas_napari.output_state import check_clean_output

    ds = _open_for_writing(req)
    check_clean_output(req.out, ds)  # before training: it would refuse after it
    k = choose_folds(req.folds)
    plan = _planned(req, ds, resume, overwrite, k)
    typer.echo(
        "cleaning out-of-sample: " + f"{k} folds by sequence"
        if k > 1
        else "cleaning in-sample (out-of-sample: --folds 2)"
    )
    fitted = drive(
        fit(
            ds,
            plan.config,
            req.run_root,
            folds=k,
            seed=plan.seed,
            device=req.device,
            init_checkpoint=plan.init,
            resume=resume,
        )
    )
    if fitted.cancelled:
        _fail("training ended without a model")
    _clean_into(ds, fitted.models, req.out, req.threshold, req.device)
