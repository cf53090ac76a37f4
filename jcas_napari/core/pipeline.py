"""The one cleaning pipeline: which models see which frames, then the proposals.

The GUI and the CLI both call ``fit`` (train one model, or one per fold) and
``clean_models`` (each model cleans the frames assigned to it). With K folds made of whole
sequences, every frame is cleaned by a model that never trained on it (cross-fitting).
``choose_folds`` picks the default: one model, in-sample. Out-of-sample cleaning is
opt-in: at the sizes measured (48 and 120 frames) each fold's model, trained on half the
sequences, cleaned worse than the in-sample model in 6 of 7 protocol runs and worse than
the given masks in all 7 (benchmarks/RESULTS.md, "Out-of-sample by default?").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jcas_napari.core.batches import sequence_map
from jcas_napari.core.clean import Cleaner, CleaningResult, RuleSettings, clean
from jcas_napari.core.config import Config
from jcas_napari.core.train import TrainEvent, TrainResult, fold_splits, train

Models = list[tuple[Path, list[int] | None]]  # checkpoint, frames it cleans (None: all)


def choose_folds(folds: int | None = None) -> int:
    """``folds`` if given, else 1 (in-sample; see the module docstring for why)."""
    if folds is not None:
        if folds < 1:
            raise ValueError(f"folds must be at least 1, not {folds}")
        return folds
    return 1


@dataclass
class FitResult:
    """The models of one ``fit`` and what each of them cleans."""

    models: Models = field(default_factory=list)
    runs: list[TrainResult] = field(default_factory=list)
    cancelled: bool = False

    @property
    def folds(self) -> int:
        return len(self.models)


def fit(
    dataset: Sequence,
    config: Config,
    run_dir: os.PathLike | str,
    *,
    folds: int | None = None,
    seed: int = 0,
    **train_kw,
) -> Generator[TrainEvent, None, FitResult]:
    """Train the model(s) for cleaning; yields every TrainEvent, returns a FitResult.

    One fold: ``run_dir`` is the run folder. K folds: ``run_dir/fold<k>`` each, trained
    on the other folds' sequences. ``train_kw`` goes to ``core.train.train`` (device,
    init_checkpoint, should_stop, resume, ...).
    """
    k = choose_folds(folds)
    run_dir = Path(run_dir)
    result = FitResult()
    if k == 1:
        plan = [(run_dir, None, None)]
    else:
        every = set(range(len(dataset)))
        plan = [
            (run_dir / f"fold{f}", sorted(every - set(held)), held)
            for f, held in enumerate(fold_splits(sequence_map(dataset), k, seed))
        ]
    for folder, train_idx, held in plan:
        res = yield from train(
            dataset, config, folder, seed=seed, train_indices=train_idx, **train_kw
        )
        result.runs.append(res)
        if res.cancelled or res.best is None:
            result.cancelled = True
            return result
        result.models.append((res.best, held))
    return result


def model_notes(cleaner: Cleaner, name: str) -> list[str]:
    """What a user must know about how this model cleaned: the guard's reason, or the
    part -> part changes it was not allowed to make (``propose.disputed_parts``)."""
    if cleaner.weak_reason:
        return [f"{name}: no changes proposed: {cleaner.weak_reason}"]
    return [
        f"{name}: no {drawn} -> {other} changes: it calls more of the parts drawn as "
        f"{drawn} {other} than {drawn}, so it does not tell them apart on these frames"
        for drawn, other in cleaner.blocked_pairs()
    ]


def clean_models(
    dataset: Sequence,
    models: Models,
    *,
    settings: RuleSettings | None = None,
    device: str = "auto",
    skip: Callable[[int, Path], bool] | None = None,
    notes: list[str] | None = None,
    used: dict | None = None,
) -> Generator[CleaningResult, None, None]:
    """Each model cleans its frames (None: all); yields results model by model.

    ``skip(index, checkpoint)`` leaves out frames already done (a resumed run); the
    guard and the neighbours still see all of the model's frames, so results do not depend
    on where a run was interrupted. What a user must know about each model (``model_notes``:
    the guard's reason, or the part -> part changes it may not make) is appended to
    ``notes``; ``used`` receives, per checkpoint name, the T_C the rule used ([K,K], and
    per distance band [B,K,K] or None), the change cap and the blocked part pairs, once
    that model has cleaned.
    """
    num_classes = getattr(getattr(dataset, "classes", None), "num_classes", None)
    for ckpt, indices in models:
        scope = list(range(len(dataset))) if indices is None else list(indices)
        todo = [i for i in scope if skip is None or not skip(i, ckpt)]
        if not todo:
            continue
        cleaner = (
            ckpt if isinstance(ckpt, Cleaner) else Cleaner(ckpt, num_classes, device, settings)
        )
        yield from clean(dataset, cleaner, indices=todo, scope=scope)
        name = Path(cleaner.source).name if cleaner.source else None
        if used is not None:
            bands = cleaner.t_bands
            used[name or f"model {len(used) + 1}"] = {
                "t_c": cleaner.t_c.tolist(),
                "t_bands": None if bands is None else bands.tolist(),
                "noise_rate": float(cleaner.noise_rate),
                "blocked": list(map(list, cleaner.blocked_pairs())),
                "drawn_gaps": float(cleaner.settings.drawn_gaps),
                "border_from_inner": bool(cleaner.settings.border_from_inner),
                "t_frames": list(cleaner.t_frames),
            }
        if notes is not None:
            notes += model_notes(cleaner, name or "the model")
