"""Datasets of images and class masks on disk: one layout, lazy loading, clear errors.

Layout (see README, "Dataset format")::

    DATASET/
      classes.json                        optional: names, ignore_index, palette
      images/<sequence>/<frame>.png       RGB uint8 (.png, .jpg, .jpeg, .tif, .tiff)
      masks/<sequence>/<frame>.png        uint8 class ids: the user's (possibly noisy) masks
      masks_clean/<sequence>/<frame>.png  optional ground truth, used for evaluation only

The sequence folders may be left out (flat layout). A dataset may instead be two TIFF
stacks, ``images.tif`` (T,H,W,3) and ``masks.tif`` (T,H,W), plus ``masks_clean.tif``.

Every problem raises :class:`DatasetError` with a one-line message that starts with the
offending path. Frames are read only when indexed, so big datasets never sit in memory.
Writers go through a temporary file and ``os.replace`` and never overwrite a file in a
dataset's ``masks/`` folder.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from jcas_napari import ENDOVIS_PART_CLASSES, IGNORE_INDEX

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
MASK_SUFFIXES = (".png", ".tif", ".tiff")
TIFF_SUFFIXES = (".tif", ".tiff")
IMAGES_DIR, MASKS_DIR, CLEAN_DIR = "images", "masks", "masks_clean"
STACK_FILES = {"image": "images.tif", "mask": "masks.tif", "clean": "masks_clean.tif"}
# Read once at import (os.umask can only be read by setting it, which is not thread-safe).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class DatasetError(ValueError):
    """A problem with a dataset on disk; the message names the file and the problem."""

    def __init__(self, path: os.PathLike | str, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class ClassInfo:
    """Class names, the ignore index and an optional RGB palette (one colour per class)."""

    names: tuple[str, ...] = ENDOVIS_PART_CLASSES
    ignore_index: int = IGNORE_INDEX
    palette: tuple[tuple[int, int, int], ...] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def to_json(self) -> dict:
        out: dict = {"names": list(self.names), "ignore_index": self.ignore_index}
        if self.palette is not None:
            out["palette"] = [list(c) for c in self.palette]
        return out

    @classmethod
    def load(cls, path: os.PathLike | str) -> ClassInfo:
        """Read ``classes.json``; a missing file gives the 4 EndoVis part classes."""
        path = Path(path)
        if not path.exists():
            return cls()
        try:
            raw = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DatasetError(path, f"not valid JSON ({exc})") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("names"), list):
            raise DatasetError(path, 'expected {"names": [...], "ignore_index": 255}')
        names = tuple(str(n) for n in raw["names"])
        ignore = int(raw.get("ignore_index", IGNORE_INDEX))
        if not 2 <= len(names) <= 255 or len(set(names)) != len(names):
            raise DatasetError(path, f"need 2 to 255 distinct class names, got {list(names)}")
        if ignore < len(names) or ignore > 255:
            raise DatasetError(path, f"ignore_index {ignore} must be in [{len(names)}, 255]")
        palette = raw.get("palette")
        if palette is not None:
            try:
                palette = tuple(tuple(int(v) for v in c) for c in palette)
            except (TypeError, ValueError):
                palette = ()
            if len(palette) != len(names) or any(len(c) != 3 for c in palette):
                raise DatasetError(path, f"palette needs one [r, g, b] per class ({len(names)})")
            if len(set(palette)) != len(palette):
                raise DatasetError(path, "palette colours must be distinct")
        return cls(names, ignore, palette)


@dataclass(frozen=True)
class FrameRef:
    """Where one frame lives: files, or an index into TIFF stacks."""

    id: str
    sequence: str
    image: Path
    mask: Path
    clean: Path | None = None
    index: int | None = None


@dataclass
class Sample:
    """One loaded frame. ``image`` (H,W,3) uint8; ``mask``/``clean`` (H,W) uint8 class ids."""

    id: str
    sequence: str
    image: np.ndarray
    mask: np.ndarray
    clean: np.ndarray | None = None


@dataclass
class Dataset(Sequence):
    """An ordered, lazily loaded list of frames with their class information.

    Indexing reads and validates one frame and returns a :class:`Sample`.
    """

    root: Path
    classes: ClassInfo
    frames: list[FrameRef]
    layout: str

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        ref = self.frames[i]
        image = self.read_image(ref)
        mask = self.read_mask(ref, "mask")
        if mask.shape != image.shape[:2]:
            raise DatasetError(
                ref.mask, f"shape mismatch: mask {mask.shape} vs image {image.shape[:2]}"
            )
        clean = None
        if ref.clean is not None:
            clean = self.read_mask(ref, "clean")
            if clean.shape != mask.shape:
                raise DatasetError(
                    ref.clean, f"shape mismatch: clean mask {clean.shape} vs mask {mask.shape}"
                )
        return Sample(ref.id, ref.sequence, image, mask, clean)

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]

    @property
    def has_clean(self) -> bool:
        return bool(self.frames) and all(f.clean is not None for f in self.frames)

    @property
    def ids(self) -> list[str]:
        return [f.id for f in self.frames]

    def sequences(self) -> dict[str, list[int]]:
        """Sequence name -> frame indices, in dataset order."""
        out: dict[str, list[int]] = {}
        for i, f in enumerate(self.frames):
            out.setdefault(f.sequence, []).append(i)
        return out

    def read_image(self, ref: FrameRef) -> np.ndarray:
        return read_image(ref.image, key=ref.index)

    def read_mask(self, ref: FrameRef, which: str = "mask") -> np.ndarray:
        path = ref.mask if which == "mask" else ref.clean
        if path is None:
            raise DatasetError(self.root, f"frame {ref.id} has no {which} mask")
        return read_mask(path, self.classes, key=ref.index)

    def validate(self, progress=None) -> None:
        """Read every frame once; raise the first :class:`DatasetError` found.

        ``progress`` is an optional tqdm-like callable wrapping an iterable.
        """
        indices = range(len(self))
        for i in progress(indices) if progress else indices:
            self[i]


# ----------------------------------------------------------------------------- reading


def _to_uint8_image(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise DatasetError(path, f"expected an RGB image (H,W,3), got shape {arr.shape}")
    arr = arr[..., :3]
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype == np.uint16:
        return (arr // 257).astype(np.uint8)
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    raise DatasetError(path, f"unsupported image dtype {arr.dtype} (use uint8 or uint16)")


_DECODE_ERRORS = (OSError, ValueError, UnidentifiedImageError, IndexError, SyntaxError,
                  KeyError, tifffile.TiffFileError)  # fmt: skip


@contextmanager
def _reading(path: Path, what: str = "file") -> Iterator[None]:
    """Turn any decoding failure inside the block into a one-line DatasetError on ``path``."""
    try:
        yield
    except FileNotFoundError:
        raise DatasetError(path, "file not found") from None
    except _DECODE_ERRORS as exc:
        raise DatasetError(
            path, f"unreadable or corrupt {what} ({type(exc).__name__}: {exc})"
        ) from None


def _decode(path: Path, key: int | None) -> np.ndarray:
    """Decode a PNG/JPEG/TIFF (page ``key`` of a stack) into a numpy array."""
    with _reading(path):
        if path.suffix.lower() in TIFF_SUFFIXES:
            return tifffile.imread(path) if key is None else tifffile.imread(path, key=key)
        with Image.open(path) as im:
            return np.asarray(im)


def read_image(path: os.PathLike | str, key: int | None = None) -> np.ndarray:
    """Read an RGB image as (H,W,3) uint8. Grey images are repeated to 3 channels."""
    path = Path(path)
    return _to_uint8_image(_decode(path, key), path)


def mask_from_array(arr: np.ndarray, classes: ClassInfo, path: os.PathLike | str) -> np.ndarray:
    """Turn a decoded mask into (H,W) uint8 class ids, or raise naming ``path``.

    Accepts class-id masks of any integer dtype whose values fit (16-bit included) and,
    when ``classes`` has a palette, RGB(A) colour masks.
    """
    path = Path(path)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        if classes.palette is None:
            raise DatasetError(
                path, "RGB mask but classes.json has no palette; save class ids or add a palette"
            )
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


def _header(path: Path) -> tuple[tuple[int, int], str]:
    """(H, W) and a pixel-mode string, read without decoding the pixels."""
    with _reading(path):
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


# ----------------------------------------------------------------------------- opening


def index_folder(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Relative path without suffix -> file, for every image file below ``folder``.

    Symlinked folders are not followed (a link loop must not hang or crash the scan);
    hidden files are skipped.
    """
    out: dict[str, Path] = {}
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [Path(dirpath) / f for f in filenames]
    for p in sorted(found):
        if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith("."):
            key = p.relative_to(folder).with_suffix("").as_posix()
            if key in out:
                raise DatasetError(p, f"two files for frame {key!r}: also {out[key].name}")
            out[key] = p
    return out


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
    else:
        raise DatasetError(
            root, "empty dataset: expected images/ and masks/ folders, or images.tif and masks.tif"
        )
    if check_headers and ds.layout != "stack":
        for ref in ds.frames:
            _check_frame_headers(ref, classes)
    return ds


def _open_folders(root: Path, classes: ClassInfo) -> Dataset:
    images = index_folder(root / IMAGES_DIR, IMAGE_SUFFIXES)
    if not images:
        raise DatasetError(root / IMAGES_DIR, "no images found (.png, .jpg, .tif)")
    if not (root / MASKS_DIR).is_dir():
        raise DatasetError(root / MASKS_DIR, "masks folder is missing")
    masks = index_folder(root / MASKS_DIR, MASK_SUFFIXES)
    clean = index_folder(root / CLEAN_DIR, MASK_SUFFIXES) if (root / CLEAN_DIR).is_dir() else {}
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
    return Dataset(root, classes, frames, layout)


def _check_frame_headers(ref: FrameRef, classes: ClassInfo) -> None:
    img_shape, _ = _header(ref.image)
    for path in (ref.mask, ref.clean):
        if path is None:
            continue
        shape, mode = _header(path)
        if mode in ("RGB", "RGBA") and classes.palette is None:
            raise DatasetError(
                path, "RGB mask but classes.json has no palette; save class ids or add a palette"
            )
        if shape != img_shape:
            raise DatasetError(path, f"shape mismatch: mask {shape} vs image {img_shape}")


def _stack_shape(path: Path) -> tuple[int, ...]:
    with _reading(path, "TIFF"), tifffile.TiffFile(path) as tf:
        return tuple(tf.series[0].shape)


def _open_stacks(root: Path, classes: ClassInfo) -> Dataset:
    img_path = root / STACK_FILES["image"]
    mask_path = root / STACK_FILES["mask"]
    if not mask_path.exists():
        raise DatasetError(mask_path, "images.tif has no masks.tif beside it")
    ishape = _stack_shape(img_path)
    if len(ishape) != 4 or ishape[3] != 3:
        raise DatasetError(img_path, f"expected a (T,H,W,3) RGB stack, got shape {ishape}")
    clean_path = root / STACK_FILES["clean"]
    paths = [mask_path] + ([clean_path] if clean_path.exists() else [])
    for p in paths:
        mshape = _stack_shape(p)
        if len(mshape) == 4 and mshape[3] in (3, 4) and classes.palette is None:
            raise DatasetError(p, "RGB mask stack but classes.json has no palette")
        if mshape[:3] != ishape[:3]:
            raise DatasetError(p, f"shape mismatch: masks {mshape} vs images {ishape[:3]}")
    clean = clean_path if clean_path.exists() else None
    frames = [
        FrameRef(f"{t:05d}", "", img_path, mask_path, clean, index=t) for t in range(ishape[0])
    ]
    return Dataset(root, classes, frames, "stack")


# ----------------------------------------------------------------------------- writing


def _is_user_mask_file(path: Path) -> bool:
    """True if ``path`` lies in the ``masks/`` folder (or is ``masks.tif``) of a dataset."""
    path = path.resolve()
    if path.name == STACK_FILES["mask"]:
        return True
    for parent in path.parents:
        if parent.name == MASKS_DIR and (parent.parent / IMAGES_DIR).is_dir():
            return True
    return False


def atomic_write_bytes(path: os.PathLike | str, data: bytes, *, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``.

    Refuses (``DatasetError``) to replace an existing file in a dataset's ``masks/``, and any
    existing file when ``overwrite`` is False.
    """
    path = Path(path)
    if path.exists():
        if _is_user_mask_file(path):
            raise DatasetError(path, "refusing to overwrite a user's mask; write to a new folder")
        if not overwrite:
            raise DatasetError(path, "file exists; refusing to overwrite")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600 files; give outputs the usual permissions instead.
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def remove_stale_temp_files(folder: os.PathLike | str) -> int:
    """Delete the temporary files that a killed writer left below ``folder`` (the
    ``.<name>.*.tmp`` files of :func:`atomic_write_bytes`); returns how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    stale = [p for p in folder.rglob(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


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


@dataclass
class ArrayDataset(Sequence):
    """Frames held in memory (for example napari layers): the same interface as
    :class:`Dataset`. images (T,H,W,3) uint8; masks and clean (T,H,W) integer class ids.
    All frames form one sequence."""

    images: np.ndarray
    masks: np.ndarray
    classes: ClassInfo = ClassInfo()
    clean: np.ndarray | None = None
    root: Path | None = None
    name: str = "layer"

    def __post_init__(self) -> None:
        if self.images.ndim == 3 and self.images.shape[-1] in (3, 4):
            self.images, self.masks = self.images[None], self.masks[None]
            self.clean = None if self.clean is None else self.clean[None]
        if self.images.ndim != 4 or self.images.shape[-1] not in (3, 4):
            raise DatasetError(self.name, f"expected RGB frames (T,H,W,3), got {self.images.shape}")
        if self.masks.shape != self.images.shape[:3]:
            raise DatasetError(self.name, f"shape mismatch: masks {self.masks.shape} vs frames "
                               f"{self.images.shape[:3]}")  # fmt: skip
        self.frames = [FrameRef(f"frame{t:05d}", "", Path(), Path(), index=t)
                       for t in range(len(self.masks))]  # fmt: skip

    def __len__(self) -> int:
        return len(self.masks)

    def __getitem__(self, i):  # type: ignore[override]
        m = mask_from_array(np.asarray(self.masks[i]), self.classes, f"{self.name}[{i}]")
        image = _to_uint8_image(np.asarray(self.images[i]), Path(f"{self.name}[{i}]"))
        clean = None if self.clean is None else np.asarray(self.clean[i], np.uint8)
        return Sample(self.frames[i].id, "", image, m, clean)

    @property
    def ids(self) -> list[str]:
        return [f.id for f in self.frames]

    @property
    def has_clean(self) -> bool:
        return self.clean is not None

    def sequences(self) -> dict[str, list[int]]:
        return {"": list(range(len(self)))}
