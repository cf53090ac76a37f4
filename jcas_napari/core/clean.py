"""Label cleaning with a trained JCAS model: corrected masks, confidence, change regions.

For each frame the model's DAR-refined class probabilities give a prediction and a
confidence (the top probability). The proposed mask is the user's mask, changed only where
the model disagrees **confidently**: the predicted class j differs from the given label and
p_j reaches j's threshold. By default the thresholds are per class and come from the
checkpoint: t_j = mean p_j over validation pixels whose (noisy) label is j, computed on the
held-out validation split after training (confident learning's per-class thresholds). A
single ``threshold`` overrides them.

Changed pixels are grouped into 8-connected regions, each with its source and target class
and a score (mean confidence), for review. A frame's noise score is the mean over its
non-ignored pixels of 1 - p(given label): the expected share of wrong pixels. Frames are
ranked by it.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from skimage.measure import label as label_regions

from jcas_napari.core.checkpoint import load_checkpoint, model_from_checkpoint
from jcas_napari.core.dar import pixel_affinity, to_grid
from jcas_napari.core.infer import predict, to_tensor
from jcas_napari.core.train import pick_device
from jcas_napari.data.resize import resize_image


@dataclass
class Region:
    """One connected region of proposed changes."""

    label: int  # its id in CleaningResult.regions
    area: int
    score: float  # mean confidence of the model over the region
    from_class: int  # the most common given class in the region
    to_class: int  # the most common proposed class
    bbox: tuple[int, int, int, int]  # y0, x0, y1, x1 (exclusive)


@dataclass
class CleaningResult:
    """Cleaning of one frame; all maps are (H,W) at the frame's own size."""

    index: int
    id: str
    prediction: np.ndarray  # uint8 class ids (DAR-refined argmax)
    confidence: np.ndarray  # float32 top probability
    proposed: np.ndarray  # uint8: the given mask with confident disagreements replaced
    regions: np.ndarray  # int32 region ids, 0 = unchanged
    region_info: list[Region] = field(default_factory=list)
    noise_score: float = 0.0
    changed_fraction: float = 0.0


class Cleaner:
    """A loaded checkpoint that cleans frames and explains them (affinity maps)."""

    def __init__(
        self, checkpoint: os.PathLike | str | dict, num_classes: int | None = None,
        device: str = "auto", threshold: float | None = None,
    ) -> None:  # fmt: skip
        ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint,
                                                                              num_classes)
        self.checkpoint = ckpt
        self.source = None if isinstance(checkpoint, dict) else str(checkpoint)
        self.device = pick_device(device)
        self.net, self.cfg = model_from_checkpoint(ckpt)
        self.net.to(self.device)
        self.class_names = list(ckpt["class_names"])
        self.ignore_index = int(ckpt.get("ignore_index", 255))
        k = len(self.class_names)
        if threshold is not None:
            self.thresholds = np.full(k, float(threshold))
        else:
            self.thresholds = np.asarray(ckpt.get("thresholds", torch.full((k,), 0.5)), float)
        self.size = (self.cfg.input.height, self.cfg.input.width)
        # Baselines trained without the affinity branch predict without DAR.
        self.refine = ckpt.get("method", "jcas") == "jcas"

    def probabilities(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Class probabilities [K,H,W] float32 for each RGB frame, at the frame's size."""
        x = to_tensor(np.stack([resize_image(im, self.size) for im in images]), self.device)
        p = predict(self.net, x, self.cfg, refine=self.refine)
        out = []
        for im, pi in zip(images, p):
            up = F.interpolate(pi[None], size=im.shape[:2], mode="bilinear", align_corners=True)
            out.append(up[0].cpu().numpy())
        return out

    def clean_frame(self, index: int, frame_id: str, probs: np.ndarray,
                    given: np.ndarray) -> CleaningResult:  # fmt: skip
        """Proposed mask, regions and scores from probabilities [K,H,W] and the given mask."""
        pred = probs.argmax(0).astype(np.uint8)
        conf = probs.max(0).astype(np.float32)
        valid = given != self.ignore_index
        sure = conf >= self.thresholds[pred]
        change = valid & (pred != given) & sure
        proposed = np.where(change, pred, given).astype(np.uint8)
        regions = label_regions(change, connectivity=2).astype(np.int32)
        info = []
        if regions.max():
            from scipy import ndimage as ndi

            for lab, sl in enumerate(ndi.find_objects(regions), start=1):
                if sl is None:
                    continue
                sel = regions[sl] == lab
                info.append(Region(
                    lab, int(sel.sum()), float(conf[sl][sel].mean()),
                    int(np.bincount(given[sl][sel]).argmax()),
                    int(np.bincount(pred[sl][sel]).argmax()),
                    (sl[0].start, sl[1].start, sl[0].stop, sl[1].stop),
                ))  # fmt: skip
        g = np.where(valid, given, 0).astype(np.intp)
        p_given = np.take_along_axis(probs, g[None], 0)[0]
        n_valid = max(int(valid.sum()), 1)
        return CleaningResult(
            index, frame_id, pred, conf, proposed, regions, info,
            noise_score=float((1 - p_given)[valid].sum() / n_valid),
            changed_fraction=float(change.sum() / n_valid),
        )  # fmt: skip

    @torch.no_grad()
    def affinity_map(self, image: np.ndarray, y: int, x: int) -> np.ndarray:
        """What DAR aggregates for pixel (y, x) of ``image`` (H,W,3): its affinity to every
        pixel, (H,W) float32 in [0, 1], upsampled from the affinity grid."""
        h, w = image.shape[:2]
        feats = self.net(to_tensor(resize_image(image, self.size), self.device)).features[1]
        grid = tuple(self.cfg.affinity.grid)
        f = to_grid(feats, grid)
        # The grid cell nearest to (y, x) under the align_corners mapping used to upsample.
        gy = int(round(y * (grid[0] - 1) / max(h - 1, 1)))
        gx = int(round(x * (grid[1] - 1) / max(w - 1, 1)))
        a = pixel_affinity(f, gy, gx)[:, None]
        up = F.interpolate(a, size=(h, w), mode="bilinear", align_corners=True)
        return up[0, 0].cpu().numpy().astype(np.float32)


def clean(
    dataset: Sequence,
    checkpoint: os.PathLike | str | dict | Cleaner,
    *,
    threshold: float | None = None,
    device: str = "auto",
    indices: Sequence[int] | None = None,
    batch_size: int = 4,
) -> Generator[CleaningResult, None, None]:
    """Clean frames of ``dataset`` one batch at a time; yields a result per frame.

    Frames are read lazily, so memory stays flat over any number of frames.
    """
    num_classes = getattr(getattr(dataset, "classes", None), "num_classes", None)
    cleaner = checkpoint if isinstance(checkpoint, Cleaner) else Cleaner(
        checkpoint, num_classes, device, threshold)  # fmt: skip
    order = list(range(len(dataset)) if indices is None else indices)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        samples = [dataset[i] for i in batch]
        probs = cleaner.probabilities([s.image for s in samples])
        for i, s, p in zip(batch, samples, probs):
            yield cleaner.clean_frame(i, s.id, p, s.mask)
