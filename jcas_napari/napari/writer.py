"""npe2 writer: a Labels layer of class masks -> a mask folder (PNG per frame) or a TIFF."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jcas_napari.data.fsutil import atomic_write_bytes
from jcas_napari.data.mask_format import MaskFormat, encode_mask
from jcas_napari.data.schema import TIFF_SUFFIXES, ClassInfo, DatasetError
from jcas_napari.data.writers import write_mask


def write_labels(path: str, data: np.ndarray, meta: dict) -> list[str]:
    """Write masks (T,H,W) or (H,W). ``path`` ending in .tif/.tiff gives one stack; anything
    else is a folder with one PNG per frame, named by the frame ids the reader recorded.

    The data layer's writers refuse to overwrite a user's masks (a dataset's masks/ folder,
    or the masks.tif beside an images.tif).
    """
    out = Path(path)
    arr = np.asarray(data)
    if arr.max(initial=0) > 255 or arr.min(initial=0) < 0:
        raise DatasetError(out, "labels hold values outside 0..255; not a class mask")
    arr = arr.astype(np.uint8)
    if out.suffix.lower() in TIFF_SUFFIXES:
        data = encode_mask(arr, MaskFormat(out.suffix, "ids"), ClassInfo())
        return [str(atomic_write_bytes(out, data))]
    frames = arr[None] if arr.ndim == 2 else arr
    ids = (meta.get("metadata") or {}).get("frame_ids") or []
    if len(ids) != len(frames):
        ids = [f"frame{t:05d}" for t in range(len(frames))]
    return [str(write_mask(out / f"{fid}.png", m)) for fid, m in zip(ids, frames)]
