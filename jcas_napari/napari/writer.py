"""npe2 writer: a Labels layer of class masks -> a mask folder (PNG per frame) or a TIFF."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jcas_napari.data.io import TIFF_SUFFIXES, DatasetError, write_mask


def write_labels(path: str, data: np.ndarray, meta: dict) -> list[str]:
    """Write masks (T,H,W) or (H,W). ``path`` ending in .tif/.tiff gives one stack; anything
    else is a folder with one PNG per frame, named by the frame ids the reader recorded.

    Refuses to overwrite the source masks (any file in a dataset's masks/ folder).
    """
    out = Path(path)
    arr = np.asarray(data)
    if arr.max(initial=0) > 255 or arr.min(initial=0) < 0:
        raise DatasetError(out, "labels hold values outside 0..255; not a class mask")
    arr = arr.astype(np.uint8)
    if out.suffix.lower() in TIFF_SUFFIXES:
        if out.exists() and out.name == "masks.tif":
            raise DatasetError(out, "refusing to overwrite the source masks.tif")
        import io

        import tifffile

        from jcas_napari.data.io import atomic_write_bytes

        buf = io.BytesIO()
        tifffile.imwrite(buf, arr, compression="zlib", photometric="minisblack")
        return [str(atomic_write_bytes(out, buf.getvalue()))]
    frames = arr[None] if arr.ndim == 2 else arr
    ids = (meta.get("metadata") or {}).get("frame_ids") or [f"frame{t:05d}" for t in
                                                             range(len(frames))]  # fmt: skip
    if len(ids) != len(frames):
        ids = [f"frame{t:05d}" for t in range(len(frames))]
    return [str(write_mask(out / f"{fid}.png", m)) for fid, m in zip(ids, frames)]
