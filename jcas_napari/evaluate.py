"""``jcas evaluate``: Dice and IoU of mask folders, stacks or EndoVis label sets.

Napari-free. Each side is a mask folder (files pair by relative path without suffix), a
TIFF stack (frames pair by index) or an EndoVis label set (``seq_N/labels/frameNNN.png``,
paired as ``seq_N/frameNNN``), so a cleaned EndoVis output is scored against the release.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from jcas_napari.core.metrics import segmentation_scores
from jcas_napari.data.decode import read_mask, read_stack_shape
from jcas_napari.data.endovis import LABELS_JSON, load_class_map
from jcas_napari.data.scan import index_folder
from jcas_napari.data.schema import (
    ENDOVIS_LABELS,
    MASK_SUFFIXES,
    NO_PALETTE,
    ClassInfo,
    DatasetError,
)

Source = dict[str, tuple[Path, int | None]]


def _label_sets(path: Path) -> list[Path]:
    """EndoVis ``labels/`` folders: ``path/labels`` or ``path/<seq>/labels``."""
    if (path / ENDOVIS_LABELS).is_dir():
        return [path / ENDOVIS_LABELS]
    return sorted(p / ENDOVIS_LABELS for p in path.iterdir() if (p / ENDOVIS_LABELS).is_dir())


def mask_source(path: Path) -> tuple[Source, str]:
    """Frames of a mask folder, a mask TIFF stack (T,H,W) or an EndoVis label set:
    key -> (file, page), and the kind of source."""
    if path.is_file() and path.suffix.lower() in (".tif", ".tiff"):
        n = read_stack_shape(path)[0]
        return {f"{i:06d}": (path, i) for i in range(n)}, "stack"
    if not path.is_dir():
        raise DatasetError(path, "no such mask folder or mask stack (.tif)")
    sets = _label_sets(path)
    if sets:
        out: Source = {}
        for folder in sets:
            seq = folder.parent.name
            for key, p in index_folder(folder, MASK_SUFFIXES).items():
                out[f"{seq}/{key}"] = (p, None)
        return out, "folder"
    return {k: (v, None) for k, v in index_folder(path, MASK_SUFFIXES).items()}, "folder"


def class_map_beside(*paths: Path) -> Path | None:
    """A ``classes.json`` or ``labels.json`` in or beside one of ``paths``, if any."""
    for path in paths:
        for folder in (path, path.parent) if path.is_dir() else (path.parent,):
            for name in ("classes.json", LABELS_JSON):
                if (folder / name).is_file():
                    return folder / name
    return None


def _read(path: Path, page: int | None, classes: ClassInfo) -> np.ndarray:
    try:
        return read_mask(path, classes, page)
    except DatasetError as exc:
        if NO_PALETTE in str(exc):
            raise DatasetError(
                path,
                "colour (RGB) mask: pass --classes CLASSES.json (or "
                "labels.json) with the colours of the classes",
            ) from None
        raise


def evaluate_folders(
    pred_dir: os.PathLike | str, gt_dir: os.PathLike | str, classes: ClassInfo | None = None
) -> dict:
    """Dice/IoU (both conventions) of the masks in ``pred_dir`` against ``gt_dir``.

    Without ``classes``, a class map beside the ground truth (or the predictions) is used,
    else the 4 EndoVis part classes. Every ground-truth frame needs a prediction.
    """
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    source = None
    if classes is None:
        source = class_map_beside(gt_dir, pred_dir)
        classes = load_class_map(source) if source else ClassInfo()
    (preds, pkind), (gts, gkind) = mask_source(pred_dir), mask_source(gt_dir)
    if not gts:
        raise DatasetError(gt_dir, "no masks found")
    if pkind != gkind:  # a stack against a folder: pair in order
        preds = dict(zip(gts, preds.values())) if len(preds) == len(gts) else {}
    missing = [k for k in gts if k not in preds]
    if missing:
        raise DatasetError(
            pred_dir,
            f"no prediction for ground-truth frame {missing[0]!r} ({len(missing)} missing)",
        )

    def checked():
        for k, (gpath, gpage) in gts.items():
            p = _read(*preds[k], classes)
            g = _read(gpath, gpage, classes)
            if p.shape != g.shape:
                raise DatasetError(
                    preds[k][0], f"shape mismatch: {p.shape} vs ground truth {g.shape}"
                )
            yield p, g

    scores = segmentation_scores(checked(), classes.num_classes, classes.ignore_index)
    scores["classes"] = list(classes.names)
    if source is not None:
        scores["class_map"] = str(source)
    return scores
