"""Finding and opening a dataset on disk: layout detection, pairing and header checks.

:func:`open_dataset` recognises the folder layout (``images/`` and ``masks/``, with or
without sequence folders), the TIFF-stack layout (``images.tif`` and ``masks.tif``) and the
EndoVis 2018 release layout (:mod:`jcas_napari.data.endovis`),
pairs every image with its mask and checks headers without decoding pixels.
"""

from __future__ import annotations

import os
from pathlib import Path

from jcas_napari.data.dataset import Dataset, FrameRef
from jcas_napari.data.decode import read_header, read_stack_shape
from jcas_napari.data.endovis import is_endovis, open_endovis
from jcas_napari.data.scan import index_folder
from jcas_napari.data.schema import (
    CLEAN_DIR,
    IMAGE_SUFFIXES,
    IMAGES_DIR,
    MASK_SUFFIXES,
    MASKS_DIR,
    NO_PALETTE,
    STACK_FILES,
    ClassInfo,
    DatasetError,
)


def open_dataset(root: os.PathLike | str, *, check_headers: bool = True) -> Dataset:
    """Open and validate the structure of a dataset folder (no pixels are decoded).

    Checks that every image has a mask and vice versa, and, with ``check_headers``, that
    each file opens, masks are not colour without a palette, and shapes agree. Class ids
    are checked when a frame is read (:meth:`Dataset.validate` reads them all).
    """
    root = Path(root)
    if not root.exists():
        raise DatasetError(root, "dataset folder does not exist")
    if not root.is_dir():
        raise DatasetError(root, "not a folder; point to the dataset folder")
    classes = ClassInfo.load(root / "classes.json")
    if (root / STACK_FILES["image"]).exists():
        ds = _open_stacks(root, classes)
    elif (root / IMAGES_DIR).is_dir():
        ds = _open_folders(root, classes)
    elif is_endovis(root):
        ds = open_endovis(root)
        classes = ds.classes
    else:
        raise DatasetError(
            root,
            "empty dataset: expected images/ and masks/ folders, images.tif and masks.tif, "
            "or EndoVis sequences (seq_N/left_frames/ and seq_N/labels/)",
        )
    if ds.class_source is None and (root / "classes.json").is_file():
        ds.class_source = root / "classes.json"
    if check_headers and ds.layout != "stack":
        for ref in ds.frames:
            _check_frame_headers(ref, classes)
    return ds


def _open_folders(root: Path, classes: ClassInfo) -> Dataset:
    skipped: list[str] = []
    images = index_folder(root / IMAGES_DIR, IMAGE_SUFFIXES, skipped)
    if not images:
        raise DatasetError(root / IMAGES_DIR, "no images found (.png, .jpg, .tif)")
    if not (root / MASKS_DIR).is_dir():
        raise DatasetError(root / MASKS_DIR, "masks folder is missing")
    masks = index_folder(root / MASKS_DIR, MASK_SUFFIXES, skipped)
    has_clean = (root / CLEAN_DIR).is_dir()
    clean = index_folder(root / CLEAN_DIR, MASK_SUFFIXES, skipped) if has_clean else {}
    for key, path in images.items():
        if key not in masks:
            raise DatasetError(path, f"image has no mask (expected masks/{key}.png)")
    for key, path in masks.items():
        if key not in images:
            raise DatasetError(path, f"mask has no image (expected images/{key}.png)")
    if clean:
        for key in images:
            if key not in clean:
                raise DatasetError(root / CLEAN_DIR, f"no clean mask for frame {key!r}")
    frames = []
    for key, path in images.items():
        seq = key.rpartition("/")[0]
        frames.append(FrameRef(key, seq, path, masks[key], clean.get(key)))
    layout = "flat" if all(f.sequence == "" for f in frames) else "folders"
    ds = Dataset(root, classes, frames, layout)
    ds.skipped = skipped
    return ds


def _check_frame_headers(ref: FrameRef, classes: ClassInfo) -> None:
    img_shape, _ = read_header(ref.image)
    for path in (ref.mask, ref.clean):
        if path is None:
            continue
        shape, mode = read_header(path)
        if mode in ("RGB", "RGBA") and classes.palette is None:
            raise DatasetError(path, NO_PALETTE)
        if shape != img_shape:
            raise DatasetError(path, f"shape mismatch: mask {shape} vs image {img_shape}")


def _open_stacks(root: Path, classes: ClassInfo) -> Dataset:
    img_path = root / STACK_FILES["image"]
    mask_path = root / STACK_FILES["mask"]
    if not mask_path.exists():
        raise DatasetError(mask_path, "images.tif has no masks.tif beside it")
    ishape = read_stack_shape(img_path)
    if len(ishape) != 4 or ishape[3] != 3:
        raise DatasetError(img_path, f"expected a (T,H,W,3) RGB stack, got shape {ishape}")
    clean_path = root / STACK_FILES["clean"]
    paths = [mask_path] + ([clean_path] if clean_path.exists() else [])
    for p in paths:
        mshape = read_stack_shape(p)
        if len(mshape) == 4 and mshape[3] in (3, 4) and classes.palette is None:
            raise DatasetError(p, "RGB mask stack but classes.json has no palette")
        if mshape[:3] != ishape[:3]:
            raise DatasetError(p, f"shape mismatch: masks {mshape} vs images {ishape[:3]}")
    clean = clean_path if clean_path.exists() else None
    frames = [
        FrameRef(f"{t:05d}", "", img_path, mask_path, clean, index=t) for t in range(ishape[0])
    ]
    return Dataset(root, classes, frames, "stack")
