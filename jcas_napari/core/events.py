"""What training reports: per-step and per-epoch events, the result, and the run's logs."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jcas_napari.data.io import atomic_write_bytes


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


def write_logs(run_dir: Path, history: list[dict]) -> None:
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys and k not in ("t_c", "t_a")]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    for row in history:
        writer.writerow({k: row.get(k, "") for k in keys})
    atomic_write_bytes(run_dir / "metrics.csv", buf.getvalue().encode())
    trans = [
        {"epoch": r["epoch"], "stage": r["stage"], "t_c": r["t_c"], "t_a": r["t_a"]}
        for r in history
    ]
    atomic_write_bytes(run_dir / "transitions.json", json.dumps(trans, indent=1).encode())
