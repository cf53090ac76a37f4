"""Writing images, masks, JSON and TIFF stacks, always atomically.

Every writer goes through :func:`jcas_napari.data.fsutil.atomic_write_bytes` (a temporary
file and ``os.replace``) and so never overwrites a file in a dataset's ``masks/`` folder.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from jcas_napari.data.fsutil import atomic_write_bytes
from jcas_napari.data.schema import STACK_FILES, TIFF_SUFFIXES, ClassInfo


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of a (H,W) or (H,W,3) uint8 array."""
    if array.dtype != np.uint8:
        raise ValueError(f"PNG writer expects uint8, got {array.dtype}")
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def write_image(path: os.PathLike | str, image: np.ndarray, *, overwrite: bool = True) -> Path:
    """Write an RGB (H,W,3) uint8 image as PNG (or TIFF by suffix), atomically."""
    return _write_array(Path(path), image, overwrite)


def write_mask(path: os.PathLike | str, mask: np.ndarray, *, overwrite: bool = True) -> Path:
    """Write a (H,W) uint8 class-id mask as PNG (or TIFF by suffix), atomically.

    Never replaces an existing file in a dataset's ``masks/`` folder.
    """
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H,W), got {mask.shape}")
    return _write_array(Path(path), np.asarray(mask, dtype=np.uint8), overwrite)


def _write_array(path: Path, array: np.ndarray, overwrite: bool) -> Path:
    if path.suffix.lower() in TIFF_SUFFIXES:
        buf = io.BytesIO()
        tifffile.imwrite(buf, array, compression="zlib")
        return atomic_write_bytes(path, buf.getvalue(), overwrite=overwrite)
    return atomic_write_bytes(path, encode_png(array), overwrite=overwrite)


def write_json(path: os.PathLike | str, obj, *, overwrite: bool = True) -> Path:
    """Write JSON atomically."""
    data = json.dumps(obj, indent=1, default=_json_default).encode()
    return atomic_write_bytes(path, data, overwrite=overwrite)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_stack(
    root: os.PathLike | str,
    images: np.ndarray,
    masks: np.ndarray,
    clean: np.ndarray | None = None,
    classes: ClassInfo | None = None,
) -> Path:
    """Write the TIFF-stack layout: images (T,H,W,3) uint8, masks and clean (T,H,W) uint8."""
    root = Path(root)
    if images.ndim != 4 or masks.shape != images.shape[:3]:
        raise ValueError(
            f"need images (T,H,W,3) and masks (T,H,W), got {images.shape}, {masks.shape}"
        )
    for name, arr in (("image", images), ("mask", masks), ("clean", clean)):
        if arr is None:
            continue
        buf = io.BytesIO()
        extra = {"photometric": "rgb"} if name == "image" else {"photometric": "minisblack"}
        tifffile.imwrite(buf, np.asarray(arr, dtype=np.uint8), compression="zlib", **extra)
        atomic_write_bytes(root / STACK_FILES[name], buf.getvalue())
    if classes is not None:
        write_json(root / "classes.json", classes.to_json())
    return root


def frame_path(root: os.PathLike | str, folder: str, frame_id: str, suffix: str = ".png") -> Path:
    """``root/folder/<frame_id><suffix>``, the path of a frame in the folder layout."""
    return Path(root) / folder / f"{frame_id}{suffix}"
