"""Inference: image normalisation and DAR-refined class probabilities."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from jcas_napari.core.config import Config
from jcas_napari.core.dar import dar, to_grid
from jcas_napari.core.model import JCASNet

# torchvision's ImageNet statistics, matching the ImageNet-initialised trunk. (The official
# code used BGR and (x - 128) / 128 for its Caffe-style DeepLab weights.)
MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], np.float32) * 255
OFFICIAL_TEST_GRID = (32, 32)


def to_tensor(images: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 images [B,H,W,3] (or one [H,W,3]) -> normalised float [B,3,H,W]."""
    x = np.asarray(images, np.float32)
    if x.ndim == 3:
        x = x[None]
    x = (x - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(device)


@torch.no_grad()
def predict(
    net: JCASNet,
    images: torch.Tensor,
    cfg: Config,
    refine: bool = True,
    official_test_time: bool = False,
) -> torch.Tensor:
    """Class probabilities [B,C,H,W] of the main level for normalised images [B,3,H,W].

    With ``refine`` (default) the logits are DAR-refined on the **training** affinity grid.
    ``official_test_time=True`` reproduces the official evaluation instead: DAR on a 32x32
    grid, and the mean of softmax(DAR) and softmax(raw), a train/test mismatch that we do
    not use by default.
    """
    size = tuple(images.shape[-2:])
    out = net(images, with_features=refine)
    z = out.logits[1]

    def up_softmax(x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(F.interpolate(x, size=size, mode="bilinear", align_corners=True), 1)

    if not refine:
        return up_softmax(z)
    grid = OFFICIAL_TEST_GRID if official_test_time else tuple(cfg.affinity.grid)
    zg = to_grid(z, grid)
    p = up_softmax(dar(zg, to_grid(out.features[1], grid)))
    if official_test_time:
        p = 0.5 * (p + up_softmax(zg))
    return p
