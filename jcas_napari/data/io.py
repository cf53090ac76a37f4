"""Datasets of images and class masks on disk: one layout, lazy loading, clear errors.

This module keeps the historical import path: it re-exports the public names of

- :mod:`jcas_napari.data.schema`: layout names, :class:`DatasetError`, :class:`ClassInfo`;
- :mod:`jcas_napari.data.decode`: reading one image or mask file (:func:`read_image`, ...);
- :mod:`jcas_napari.data.dataset`: :class:`Dataset`, :class:`ArrayDataset`, :class:`Sample`;
- :mod:`jcas_napari.data.readers`: :func:`open_dataset`, layout detection, :func:`index_folder`;
- :mod:`jcas_napari.data.writers`: :func:`write_image`, :func:`write_mask`, ...;
- :mod:`jcas_napari.data.fsutil`: :func:`atomic_write_bytes`, :func:`remove_stale_temp_files`.

New code inside the package imports from those modules directly.
"""

from __future__ import annotations

# ``os`` and ``tempfile`` stay reachable as ``io.os`` / ``io.tempfile`` for code that patches
# ``os.replace`` or ``tempfile.mkstemp`` through this module.
import os  # noqa: F401
import tempfile  # noqa: F401

from jcas_napari.data.dataset import ArrayDataset, Dataset, FrameRef, Sample
from jcas_napari.data.decode import mask_from_array, read_image, read_mask
from jcas_napari.data.fsutil import _UMASK, atomic_write_bytes, remove_stale_temp_files  # noqa: F401
from jcas_napari.data.readers import index_folder, open_dataset
from jcas_napari.data.schema import (
    CLEAN_DIR,
    IMAGE_SUFFIXES,
    IMAGES_DIR,
    MASK_SUFFIXES,
    MASKS_DIR,
    STACK_FILES,
    TIFF_SUFFIXES,
    ClassInfo,
    DatasetError,
)
from jcas_napari.data.writers import (
    encode_png,
    frame_path,
    write_image,
    write_json,
    write_mask,
    write_stack,
)

__all__ = [
    "CLEAN_DIR",
    "IMAGE_SUFFIXES",
    "IMAGES_DIR",
    "MASK_SUFFIXES",
    "MASKS_DIR",
    "STACK_FILES",
    "TIFF_SUFFIXES",
    "ArrayDataset",
    "ClassInfo",
    "Dataset",
    "DatasetError",
    "FrameRef",
    "Sample",
    "atomic_write_bytes",
    "encode_png",
    "frame_path",
    "index_folder",
    "mask_from_array",
    "open_dataset",
    "read_image",
    "read_mask",
    "remove_stale_temp_files",
    "write_image",
    "write_json",
    "write_mask",
    "write_stack",
]
