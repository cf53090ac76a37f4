"""Decoding single image and mask files into validated numpy arrays.

Images become (H,W,3) uint8; masks become (H,W) uint8 class ids checked against a
:class:`~jcas_napari.data.schema.ClassInfo`. Any decoding failure raises a one-line
:class:`~jcas_napari.data.schema.DatasetError` naming the file. The header probes read
shapes without decoding pixels.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, ImageOps, UnidentifiedImageError

from jcas_napari.data.schema import NO_PALETTE, TIFF_SUFFIXES, ClassInfo, DatasetError

TWELVE_BIT = 4095
COLOUR_MODES = {"P": "palette (P)", "PA": "palette+alpha (PA)", "CMYK": "CMYK"}


def to_uint8_image(
    arr: np.ndarray, path: Path | str = "image", notes: list[str] | None = None
) -> np.ndarray:
    """Decoded pixels -> (H,W,3) uint8 (or (T,H,W,3) for a stack), the one conversion that
    the file reader, the napari layer reader and the trainer's layers all use.

    Grey is repeated to 3 channels and grey+alpha drops its alpha. 16-bit data is scaled
    by its bit depth: values that never exceed 4095 are taken as 12-bit (common for
    camera data in 16-bit containers, which dividing by 257 squashed to 0-15); otherwise
    by 65535. Floats in [0, 1] are scaled by 255. Each conversion made is appended to
    ``notes``, for ``jcas check`` to report.
    """
    path = Path(path)
    notes = [] if notes is None else notes
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 2):
        notes.append("grey frame repeated to RGB" + (", alpha dropped" if arr.ndim == 3 else ""))
        arr = np.repeat((arr if arr.ndim == 2 else arr[..., 0])[..., None], 3, axis=-1)
    if arr.ndim not in (3, 4) or arr.shape[-1] not in (3, 4):
        raise DatasetError(path, f"expected an RGB image (H,W,3), got shape {arr.shape}")
    if arr.shape[-1] == 4:
        notes.append("alpha channel dropped")
    arr = arr[..., :3]
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype == np.uint16:
        top = TWELVE_BIT if int(arr.max(initial=0)) <= TWELVE_BIT else 65535
        notes.append(f"{12 if top == TWELVE_BIT else 16}-bit data scaled to 8 bits")
        return (arr.astype(np.float32) * (255.0 / top) + 0.5).astype(np.uint8)
    if arr.dtype == bool:
        notes.append("binary frame scaled to 0/255")
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating) and arr.size and 0 <= arr.min() and arr.max() <= 1:
        notes.append("float data in [0, 1] scaled to 8 bits")
        return (arr * 255 + 0.5).astype(np.uint8)
    raise DatasetError(path, f"unsupported image dtype {arr.dtype} (use uint8 or uint16)")


_DECODE_ERRORS = (
    OSError,
    ValueError,
    UnidentifiedImageError,
    IndexError,
    SyntaxError,
    KeyError,
    tifffile.TiffFileError,
)


class _TiffWarnings(logging.Filter):
    """On tifffile's logger (which warns about a damaged file instead of raising): inside a
    ``reading`` block of the same thread it keeps the message and stops the record, which
    would otherwise print a stray line; everywhere else it lets records through.

    One filter, installed once: adding a handler and switching ``propagate`` off per read
    was not thread-safe (a read in another thread could restore the wrong setting, or see
    this thread's warning)."""

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        caught = getattr(self.local, "messages", None)
        if caught is None:
            return True
        if record.levelno >= logging.WARNING:
            caught.append(record.getMessage())
        return False


_TIFF_WARNINGS = _TiffWarnings()
logging.getLogger("tifffile").addFilter(_TIFF_WARNINGS)


@contextmanager
def reading(path: Path, what: str = "file") -> Iterator[None]:
    """Turn any decoding failure inside the block into a one-line DatasetError on ``path``.

    tifffile's warnings (a truncated stack logs "invalid page offset" and then reads fewer
    pages) are caught too: they would print a stray line, and the short read would be
    reported as a misleading shape mismatch."""
    local = _TIFF_WARNINGS.local
    outer, local.messages = getattr(local, "messages", None), []
    try:
        yield
        if local.messages:
            problem = local.messages[0].rpartition("> ")[2]
            raise DatasetError(path, f"truncated or corrupt {what} ({problem})")
    except DatasetError:
        raise
    except FileNotFoundError:
        raise DatasetError(path, "file not found") from None
    except _DECODE_ERRORS as exc:
        raise DatasetError(
            path, f"unreadable or corrupt {what} ({type(exc).__name__}: {exc})"
        ) from None
    finally:
        local.messages = outer


def _decode(path: Path, key: int | None) -> np.ndarray:
    """Decode a PNG/JPEG/TIFF (page ``key`` of a stack) into a numpy array."""
    with reading(path):
        if path.suffix.lower() in TIFF_SUFFIXES:
            return tifffile.imread(path) if key is None else tifffile.imread(path, key=key)
        with Image.open(path) as im:
            return np.asarray(im)


def read_image(
    path: os.PathLike | str, key: int | None = None, notes: list[str] | None = None
) -> np.ndarray:
    """Read an RGB image as (H,W,3) uint8 (``to_uint8_image``).

    Unlike masks, frames are decoded for their colours: EXIF orientation is applied,
    palette ("P") frames are expanded to their colours, and CMYK JPEGs are converted to
    RGB (their channels read raw look inverted). Conversions are appended to ``notes``.
    """
    path = Path(path)
    notes = [] if notes is None else notes
    if path.suffix.lower() in TIFF_SUFFIXES:
        return to_uint8_image(_decode(path, key), path, notes)
    with reading(path):
        with Image.open(path) as im:
            if im.getexif().get(0x0112, 1) != 1:  # exif_transpose copies even when upright
                notes.append("EXIF orientation applied")
                im = ImageOps.exif_transpose(im)
            if im.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
                notes.append(f"{COLOUR_MODES.get(im.mode, im.mode)} frame converted to RGB")
                im = im.convert("RGB")
            elif im.mode == "LA":
                im = im.convert("L")
            arr = np.asarray(im)
    return to_uint8_image(arr, path, notes)


def mask_from_array(arr: np.ndarray, classes: ClassInfo, path: os.PathLike | str) -> np.ndarray:
    """Turn a decoded mask into (H,W) uint8 class ids, or raise naming ``path``.

    Accepts class-id masks of any integer dtype whose values fit (16-bit included) and,
    when ``classes`` has a palette, RGB(A) colour masks.
    """
    path = Path(path)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        if classes.palette is None:
            raise DatasetError(path, NO_PALETTE)
        arr = _rgb_to_ids(arr[..., :3], classes, path)
    if arr.ndim != 2:
        raise DatasetError(path, f"expected a 2-D mask of class ids, got shape {arr.shape}")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        raise DatasetError(path, f"mask dtype {arr.dtype} is not an integer type")
    values = np.unique(arr)
    known = (values >= 0) & ((values < classes.num_classes) | (values == classes.ignore_index))
    bad = values[~known]
    if bad.size:
        shown = ", ".join(str(int(v)) for v in bad[:5])
        raise DatasetError(
            path,
            f"unknown class id(s) {shown}: expected 0..{classes.num_classes - 1}"
            f" or ignore {classes.ignore_index}",
        )
    return arr.astype(np.uint8, copy=False)


def _rgb_to_ids(rgb: np.ndarray, classes: ClassInfo, path: Path) -> np.ndarray:
    assert classes.palette is not None
    code = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    keys = np.array([(r << 16) | (g << 8) | b for r, g, b in classes.palette], dtype=np.int64)
    order = np.argsort(keys)
    pos = np.clip(np.searchsorted(keys[order], code), 0, len(keys) - 1)
    found = keys[order][pos] == code
    if not found.all():
        c = int(code[~found].flat[0])
        raise DatasetError(
            path, f"colour ({c >> 16}, {(c >> 8) & 255}, {c & 255}) is not in the palette"
        )
    return order[pos].astype(np.uint8)


def read_mask(
    path: os.PathLike | str, classes: ClassInfo | None = None, key: int | None = None
) -> np.ndarray:
    """Read a class-id mask as (H,W) uint8, validated against ``classes``."""
    path = Path(path)
    return mask_from_array(_decode(path, key), classes or ClassInfo(), path)


def read_header(path: Path) -> tuple[tuple[int, int], str]:
    """(H, W) and a pixel-mode string, read without decoding the pixels."""
    with reading(path):
        if path.suffix.lower() in TIFF_SUFFIXES:
            with tifffile.TiffFile(path) as tf:
                shape = tuple(tf.series[0].shape)
            if len(shape) == 2:
                return (shape[0], shape[1]), "L"
            if len(shape) == 3 and shape[2] in (3, 4):
                return (shape[0], shape[1]), "RGB"
            raise DatasetError(path, f"expected one image (H,W) or (H,W,3), got shape {shape}")
        with Image.open(path) as im:
            return (im.height, im.width), im.mode


def read_stack_shape(path: Path) -> tuple[int, ...]:
    with reading(path, "TIFF"), tifffile.TiffFile(path) as tf:
        return tuple(tf.series[0].shape)
