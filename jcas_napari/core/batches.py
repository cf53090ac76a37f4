"""Training data: splits by sequence, folds, and batches read lazily from a dataset."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from jcas_napari.core.infer import to_tensor
from jcas_napari.data.fingerprint import fingerprint
from jcas_napari.data.resize import resize_image, resize_mask


def training_masks(dataset: Sequence, indices: list[int], size, trained_on: dict[str, str]):
    """Yield the masks of frames ``indices`` at ``size`` (h, w); record each frame's id ->
    content ``fingerprint`` in ``trained_on`` on the way (the cleaning rule's ``trained_frames``),
    since the frames are read here anyway. Datasets without ids record nothing."""
    names = getattr(dataset, "ids", None)
    for i in indices:
        sample = dataset[i]
        if names:
            trained_on[str(names[i])] = fingerprint(sample.image)
        yield resize_mask(sample.mask, size)


def sequence_map(dataset: Sequence) -> dict[str, list[int]]:
    """Sequence name -> frame indices; a dataset without sequences is one sequence ''."""
    seqs = getattr(dataset, "sequences", None)
    return seqs() if callable(seqs) else {"": list(range(len(dataset)))}


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
        raise ValueError(
            f"{folds} folds need at least {folds} sequences, the dataset has {len(names)}"
        )
    order = np.random.default_rng(seed).permutation(names)
    return [sorted(i for n in order[f::folds] for i in sequences[n]) for f in range(folds)]


def load_batch(
    dataset: Sequence,
    indices: Sequence[int],
    size: tuple[int, int],
    flips: Sequence[bool] | None = None,
    device: str | torch.device = "cpu",
    ignore_index: int = 255,
) -> tuple[torch.Tensor, torch.Tensor]:
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


class PlannedBatches(torch.utils.data.Dataset):
    """Batches planned in advance (frame indices and flips), read by a DataLoader.

    Item ``s`` is batch ``s`` of the plan: (images [B,3,h,w] float, masks [B,h,w] long),
    made by ``load_batch`` on the CPU. With workers, reading and resizing overlap the
    training step; the order and the flips stay those of the plan, so a run does not
    depend on how many workers read it.
    """

    def __init__(
        self,
        dataset: Sequence,
        plan: list[list[tuple[int, bool]]],
        size: tuple[int, int],
        ignore_index: int = 255,
    ) -> None:
        self.dataset, self.plan, self.size, self.ignore = dataset, plan, size, ignore_index

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, s: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = [i for i, _ in self.plan[s]]
        flips = [f for _, f in self.plan[s]]
        return load_batch(self.dataset, idx, self.size, flips, "cpu", self.ignore)


def batch_loader(
    dataset: Sequence,
    plan: list[list[tuple[int, bool]]],
    size: tuple[int, int],
    device: torch.device,
    ignore_index: int = 255,
) -> torch.utils.data.DataLoader:
    """A DataLoader over ``PlannedBatches``: worker processes and pinned memory on CUDA,
    where the CPU pipeline limited a GPU run; in-process on the CPU, where a worker would
    take a core from the step itself."""
    import os

    workers = min(4, (os.cpu_count() or 2) - 1) if device.type == "cuda" else 0
    return torch.utils.data.DataLoader(
        PlannedBatches(dataset, plan, size, ignore_index),
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
