"""Cleaning shared among the ranks of a torchrun group (``torchrun ... -m jcas_napari.cli clean``).

Rank 0 holds the output folder's lock for the whole group and decides, once, what is
left to do (the frames an interrupted run finished, with which model) and tells every
rank. The remaining (model, frame) work is cut into contiguous shares, one per rank:
contiguous, so that a rank computes the temporal neighbours of few frames it does not
own. Each rank writes its own frames' files and sidecars; rank 0 then gathers every
rank's score rows and notes (the gather also waits for the slowest rank) and writes
``scores.csv`` and the report. Without a process group every function here is the
single-process case, and costs nothing.

Identity with a single-process run: each rank checks the model on the same frames (the
guard, T and the part check on the data), cleans with the same scope and the same
neighbours, and ``Cleaner.probabilities`` gives a frame the same bits whatever batch it
was in.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TypeVar

from jcas_napari.core.device import rank, rank0_value, world

T = TypeVar("T")
Skip = Callable[[int, object], bool]


def from_rank0(compute: Callable[[], T]) -> T:
    """``compute()`` run on rank 0 only; every rank gets its result, or raises its error.

    The other ranks raise ValueError with rank 0's message (the exception itself may not
    survive pickling: ``DatasetError`` takes two arguments).
    """
    if world() == 1:
        return compute()
    if rank() == 0:
        try:
            value = compute()
        except Exception as exc:
            rank0_value(("error", str(exc)))
            raise
        rank0_value(("ok", value))
        return value
    status, value = rank0_value(None)
    if status == "error":
        raise ValueError(value)
    return value


@contextmanager
def group_lock(out: Path, lock: Callable[[Path], AbstractContextManager]) -> Iterator[None]:
    """``lock(out)`` held by rank 0 for the whole group while the body runs on every rank.

    One holder: another ``jcas clean`` into ``out`` is refused while any rank of this
    group may still write there (rank 0 leaves only after it has gathered every rank). A
    refusal is raised on every rank.
    """
    if world() == 1:
        with lock(out):
            yield
        return
    if rank() != 0:
        from_rank0(lambda: None)  # waits for rank 0's verdict on the lock
        yield
        return
    held = lock(out)
    from_rank0(held.__enter__)
    try:
        yield
    except BaseException as exc:
        if not held.__exit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        held.__exit__(None, None, None)


def share(
    n_frames: int,
    models: Sequence[tuple[os.PathLike | str, Sequence[int] | None]],
    finished: Skip,
) -> Skip:
    """The ``skip(index, checkpoint)`` of this rank: frames already finished, and (under
    torchrun) the frames of the other ranks' shares.

    The work list is every model's unfinished frames, model by model, in frame order (the
    order ``pipeline.clean_models`` cleans them); rank r gets its r-th contiguous slice.
    """
    if world() == 1:
        return finished
    work = [
        (str(ckpt), i)
        for ckpt, idx in models
        for i in (range(n_frames) if idx is None else idx)
        if not finished(i, ckpt)
    ]
    lo, hi = rank() * len(work) // world(), (rank() + 1) * len(work) // world()
    mine = set(work[lo:hi])
    return lambda i, ckpt: finished(i, ckpt) or (str(ckpt), i) not in mine


def merge(rows: dict[str, dict], notes: list[str]) -> tuple[dict[str, dict], list[str]] | None:
    """Every rank's new score rows (by frame id) and notes, on rank 0; None on the others.

    A collective: it returns on rank 0 only once every rank has finished its share.
    """
    if world() == 1:
        return rows, notes
    import torch.distributed as dist

    parts: list = [None] * world()
    dist.all_gather_object(parts, (rows, notes))
    if rank() != 0:
        return None
    merged: dict[str, dict] = {}
    for part_rows, _ in parts:
        merged.update(part_rows)
    # Every rank that cleaned with a weak model noted it: say it once.
    return merged, list(dict.fromkeys(n for _, part_notes in parts for n in part_notes))
