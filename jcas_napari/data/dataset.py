"""The dataset types: frame references, loaded samples, and datasets on disk or in memory.

:class:`Dataset` is an ordered, lazily loaded list of frames: frames are read only when
indexed, so big datasets never sit in memory. :class:`ArrayDataset` gives frames held in
memory (for example napari layers) the same interface. Open a dataset folder with
:func:`jcas_napari.data.readers.open_dataset`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jcas_napari.data.decode import mask_from_array, read_image, read_mask, to_uint8_image
from jcas_napari.data.schema import ClassInfo, DatasetError


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
    skipped: list[str] = field(default_factory=list)  # entries not read, and why
    class_source: Path | None = None  # the file the class map came from, if any
    # Conversions made while decoding frames: what was done -> the files it was done to.
    conversions: dict[str, list[Path]] = field(default_factory=dict)

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
        notes: list[str] = []
        image = read_image(ref.image, key=ref.index, notes=notes)
        for note in notes:
            files = self.conversions.setdefault(note, [])
            if ref.image not in files:
                files.append(ref.image)
        return image

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
            raise DatasetError(
                self.name,
                f"shape mismatch: masks {self.masks.shape} vs frames {self.images.shape[:3]}",
            )
        self.frames = [
            FrameRef(f"frame{t:05d}", "", Path(), Path(), index=t) for t in range(len(self.masks))
        ]

    def __len__(self) -> int:
        return len(self.masks)

    def __getitem__(self, i):  # type: ignore[override]
        m = mask_from_array(np.asarray(self.masks[i]), self.classes, f"{self.name}[{i}]")
        image = to_uint8_image(np.asarray(self.images[i]), Path(f"{self.name}[{i}]"))
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
