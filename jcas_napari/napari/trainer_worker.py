"""The trainer's background work: run folders, worker generators, progress, saving a model.

The generators here run in napari worker threads and touch neither Qt nor layers: they
import torch there (not on the GUI thread) and yield plain data that the widget's slots
put on screen. ``error_line`` turns an exception into the one line the user is shown.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Generator
from pathlib import Path


def ask_save_path(parent, layers) -> str:
    """The file dialog of 'Save model…' (an empty string: the user cancelled)."""
    from qtpy.QtWidgets import QFileDialog

    roots = dataset_roots(layers)
    start = str(roots[0].parent / "jcas-model.pt") if roots else "jcas-model.pt"
    path, _ = QFileDialog.getSaveFileName(
        parent, "Save the fine-tuned model", start, "PyTorch checkpoint (*.pt)"
    )
    return path


def remove_tree(root: Path | str, *_signal_args) -> None:
    """Delete ``root`` if it is there (usable as a Qt slot: extra arguments ignored)."""
    shutil.rmtree(root, ignore_errors=True)


class RunFolders:
    """The temporary run folders of one trainer, under one root folder.

    Each training run writes checkpoints into its own folder (about 45 MB for the small
    model). Only the folders of the model in use are kept (``keep_only``); the root goes
    when the widget or its viewer closes, or at the latest when this object is collected
    or Python exits.
    """

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="jcas_runs_"))
        self._finalizer = weakref.finalize(self, remove_tree, self.root)

    def new(self) -> Path:
        """A fresh folder for one run."""
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="run_", dir=self.root))

    def folders(self) -> list[Path]:
        return sorted(p for p in self.root.glob("run_*") if p.is_dir())

    def keep_only(self, in_use: list[str | os.PathLike | None]) -> list[Path]:
        """Delete every run folder that holds none of the paths ``in_use``."""
        used = [Path(p).resolve() for p in in_use if p]
        removed = []
        for folder in self.folders():
            real = folder.resolve()
            if not any(real == p or real in p.parents for p in used):
                remove_tree(folder)
                removed.append(folder)
        return removed

    def remove_all(self) -> None:
        self._finalizer()


def training_run(
    dataset, cfg, run_dir: Path, device: str, init: str | None, should_stop: Callable[[], bool]
) -> Generator:
    """The worker's training: ``core.pipeline.fit``, as ``jcas run`` does; returns its result.

    torch is imported here, in the worker: after the widget's background preload this is
    a dictionary lookup, and before it the GUI thread does not wait for it.
    """
    import torch

    from jcas_napari.core.memory import release_freed_memory
    from jcas_napari.core.pipeline import fit

    # Leave a core to the GUI thread: with every core busy in the worker, the event loop
    # stalled (benchmarks/bench_gui.py).
    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    try:
        return (
            yield from fit(
                dataset, cfg, run_dir, device=device, init_checkpoint=init, should_stop=should_stop
            )
        )
    finally:
        release_freed_memory()  # here, off the GUI thread, once the run has ended


def cleaning_run(dataset, session, notes: list[str]) -> Generator:
    """The worker's cleaning: each model cleans its frames; yields one result per frame.

    Loading the model(s) happens here, in the worker, not on the GUI thread.
    """
    from jcas_napari.core import pipeline

    models = session.models or [(session.checkpoint, None)]
    one = [(session.get_cleaner(), None)] if len(models) == 1 else models
    yield from pipeline.clean_models(dataset, one, notes=notes)


def set_progress(pbar, step: int, total: int, desc: str | None = None) -> None:
    """Show ``step`` of ``total`` on a napari progress bar (from a slot, GUI thread).

    The training worker starts without a total (it is known from the first event), so
    the activity panel shows numbers from the first step on.
    """
    if pbar is None:
        return
    if pbar.total != total:
        pbar.total = total
    if step < pbar.n:  # a new fold starts counting again
        pbar.n = 0
    if step > pbar.n:
        pbar.update(step - pbar.n)
    if desc is not None and desc != pbar.desc:
        pbar.set_description(desc)


def dataset_roots(layers) -> list[Path]:
    """The dataset folders the layers were read from (the reader's ``dataset_root``)."""
    roots = {(getattr(lay, "metadata", None) or {}).get("dataset_root") for lay in layers}
    return [Path(r) for r in roots if r]


def check_model_destination(path: str | os.PathLike, roots: list[Path]) -> Path:
    """Where to save a model: ``.pt`` added if there is no suffix; never in a dataset."""
    dest = Path(path).expanduser()
    if not dest.suffix:
        dest = dest.with_suffix(".pt")
    folder = dest.parent.resolve()
    for root in roots:
        root = root.resolve()
        if folder == root or root in folder.parents:
            raise ValueError(
                f"{dest.name}: refusing to save a model inside the dataset "
                f"{root}; choose a folder outside it"
            )
    if dest.is_dir():
        raise ValueError(f"{dest} is a folder; choose a file name")
    return dest


def copy_checkpoint(source: str | os.PathLike, dest: Path) -> Path:
    """Copy a checkpoint atomically (temp file + ``os.replace``): no half-written model."""
    from jcas_napari.data.io import atomic_write_bytes

    return atomic_write_bytes(dest, Path(source).read_bytes())


def file_line(path: os.PathLike | str, problem: str) -> str:
    """How a bad file is named to the user: its name, the problem, then the full path."""
    return f"{Path(path).name}: {problem} ({path})"


def error_line(exc: BaseException) -> str:
    """One line for the user: the file and the problem, without library internals.

    A ``CheckpointError`` (checked by name: importing core.checkpoint imports torch) is
    ``"<path>: <problem>"``: shown as the file's name, the problem, then the full path.
    """
    path = getattr(exc, "path", None)
    text = str(exc).strip()
    if type(exc).__name__ == "CheckpointError" and path is not None:
        problem = text[len(str(path)) + 2 :] if text.startswith(str(path)) else text
        return file_line(path, problem)
    first = text.splitlines()[0] if text else type(exc).__name__
    return first if len(first) <= 300 else first[:297] + "..."
