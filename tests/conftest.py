"""Shared fixtures: tiny synthetic datasets written in each supported layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jcas_napari.data.io import frame_path, write_image, write_mask
from jcas_napari.data.synthetic import make_sequence

SMALL = (64, 80)


@pytest.fixture(autouse=True)
def _thaw_gc():
    """The napari trainer freezes the collector during a run; every test ends thawed."""
    import gc

    yield
    gc.unfreeze()


@pytest.fixture(scope="session")
def small_sequence():
    """images (6,64,80,3) uint8 and masks (6,64,80) uint8 of one synthetic sequence."""
    return make_sequence(6, np.random.default_rng(7), SMALL, n_instruments=2)


def write_folder_dataset(root: Path, images, masks, sequences=("seq_a", "seq_b"), clean=None):
    """Write frames alternately into the given sequence folders ('' = flat layout)."""
    ids = []
    for i, (img, m) in enumerate(zip(images, masks)):
        seq = sequences[i % len(sequences)]
        fid = f"{seq}/f{i:02d}" if seq else f"f{i:02d}"
        write_image(frame_path(root, "images", fid), img)
        write_mask(frame_path(root, "masks", fid), m)
        if clean is not None:
            write_mask(frame_path(root, "masks_clean", fid), clean[i])
        ids.append(fid)
    return ids


@pytest.fixture
def folder_dataset(tmp_path, small_sequence):
    images, masks = small_sequence
    root = tmp_path / "ds"
    write_folder_dataset(root, images, masks, clean=masks)
    return root
