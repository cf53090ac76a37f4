"""Masks go back out in the user's own format: file type, bit depth, palette and layout.

:func:`format_of` reads, from a mask file's header, how it stores classes: class ids
(8 or 16 bit, PNG or TIFF), a PNG palette image ("P" mode, whose indices are the class
ids) or RGB colours mapped by the dataset's palette. :func:`encode_mask` writes (H,W) class
ids back in that format, and :func:`output_targets` names the output files in the dataset's
own layout. Where nothing can be kept (an alpha channel), :attr:`MaskFormat.change` says so.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from jcas_napari.data.decode import reading
from jcas_napari.data.schema import TIFF_SUFFIXES, ClassInfo

PNG_ID_MODES = {"L": "uint8", "I;16": "uint16", "I;16B": "uint16", "I": "uint16", "1": "uint8"}


@dataclass(frozen=True)
class MaskFormat:
    """How a mask file stores classes. ``kind``: "ids", "indexed" (PNG palette) or "rgb"."""

    suffix: str = ".png"
    kind: str = "ids"
    dtype: str = "uint8"
    png_palette: tuple[int, ...] | None = None
    change: str = ""  # what could not be kept, for the user; empty if nothing

    def describe(self) -> str:
        what = {
            "ids": f"{self.dtype[4:]}-bit class ids",
            "indexed": "palette-indexed classes",
            "rgb": "RGB colour classes",
        }[self.kind]
        return f"{self.suffix} {what}"


def format_of(path: Path) -> MaskFormat:
    """The format of the mask file at ``path`` (a single mask or a TIFF stack), from its
    header only."""
    with reading(path, "mask"):  # the decoder's one-line errors for a bad file
        if path.suffix.lower() in TIFF_SUFFIXES:
            return _tiff_format(path)
        with Image.open(path) as im:
            mode, palette = im.mode, im.getpalette() if im.mode == "P" else None
    if mode == "P":
        return MaskFormat(path.suffix, "indexed", "uint8", tuple(palette or ()))
    if mode in ("RGB", "RGBA"):
        change = "alpha channel dropped" if mode == "RGBA" else ""
        return MaskFormat(path.suffix, "rgb", "uint8", change=change)
    if mode in PNG_ID_MODES:
        change = "1-bit mask written as 8-bit" if mode == "1" else ""
        return MaskFormat(path.suffix, "ids", PNG_ID_MODES[mode], change=change)
    return MaskFormat(path.suffix, "ids", "uint8", change=f"{mode} mask written as 8-bit ids")


def _tiff_format(path: Path) -> MaskFormat:
    with tifffile.TiffFile(path) as tf:
        series = tf.series[0]
        shape, dtype = tuple(series.shape), np.dtype(series.dtype)
    if shape[-1:] in ((3,), (4,)) and len(shape) >= 3:
        return MaskFormat(path.suffix, "rgb", "uint8")
    keep = dtype.name if dtype.name in ("uint8", "uint16") else "uint16"
    change = "" if keep == dtype.name else f"{dtype.name} mask written as uint16"
    return MaskFormat(path.suffix, "ids", keep, change=change)


def to_stored(mask: np.ndarray, fmt: MaskFormat, classes: ClassInfo) -> np.ndarray:
    """(…,H,W) uint8 class ids -> the array the format stores: ids in its dtype, or
    (…,H,W,3) colours through the class palette."""
    if fmt.kind == "rgb":
        if classes.palette is None:
            raise ValueError("RGB masks need the class palette to be written")
        lut = np.zeros((256, 3), np.uint8)
        lut[: classes.num_classes] = np.asarray(classes.palette, np.uint8)
        return lut[mask]
    return mask.astype(fmt.dtype)


def encode_mask(mask: np.ndarray, fmt: MaskFormat, classes: ClassInfo) -> bytes:
    """Bytes of a (H,W) or stacked (T,H,W) uint8 class-id mask in ``fmt``."""
    stored = to_stored(mask, fmt, classes)
    buf = io.BytesIO()
    if fmt.suffix.lower() in TIFF_SUFFIXES:
        photometric = "rgb" if fmt.kind == "rgb" else "minisblack"
        tifffile.imwrite(buf, stored, compression="zlib", photometric=photometric)
        return buf.getvalue()
    if stored.ndim not in (2, 3) or (stored.ndim == 3 and fmt.kind != "rgb"):
        raise ValueError(f"a PNG holds one mask, got shape {mask.shape}")
    im = Image.fromarray(stored)
    if fmt.kind == "indexed":
        im = im.convert("P") if im.mode != "P" else im
        im.putpalette(list(fmt.png_palette or ()))
    im.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def output_targets(dataset) -> list[tuple[Path, MaskFormat]]:
    """Where each frame's cleaned mask goes (relative to the output folder), in the
    dataset's own layout, and its format (that of the frame's input mask), in frame order.

    Each input mask's header is read once here (a TIFF stack's header once in all), so a
    run looks the formats up instead of reading headers again per frame. Folder layouts
    give ``masks/<id><suffix>``; the EndoVis layout gives ``<seq>/labels/<name>``. A TIFF
    stack's frames go to ``masks/<id>.png`` with the stack's bit depth, and
    :func:`stack_output` joins them into ``masks.tif`` at the end.
    """
    if dataset.layout == "stack":
        if not dataset.frames:
            return []
        fmt = format_of(dataset.frames[0].mask)
        png = MaskFormat(".png", fmt.kind, fmt.dtype)
        return [(Path("masks") / f"{ref.id}.png", png) for ref in dataset.frames]
    targets = []
    for ref in dataset.frames:
        if dataset.layout == "endovis":
            rel = Path(ref.sequence) / "labels" / ref.mask.name
        else:
            rel = Path("masks") / f"{ref.id}{ref.mask.suffix}"
        targets.append((rel, format_of(ref.mask)))
    return targets


def stack_output(dataset) -> tuple[Path, MaskFormat] | None:
    """``masks.tif`` and the input stack's format, for a TIFF-stack dataset; else None."""
    if dataset.layout != "stack":
        return None
    return Path("masks.tif"), format_of(dataset.frames[0].mask)
