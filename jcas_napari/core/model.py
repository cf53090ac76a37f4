"""DeepLab-v2 "multi-level" JCAS network: dilated ResNet trunk, ASPP class heads and affinity
embeddings on layer3 (auxiliary level 1) and layer4 (main level 2), output stride 8.

The trunk's parameter names follow torchvision's ResNet (``conv1``, ``bn1``,
``layer1.0.conv1``, ``layer1.0.downsample.0`` ...), so torchvision ImageNet state dicts load
as they are (their ``fc.*`` entries are ignored).
"""

from __future__ import annotations

import os
import pickle
import warnings
from typing import NamedTuple

import torch
from torch import nn

from jcas_napari.core.config import Config, ModelConfig

IMAGENET_URLS = {
    18: "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    34: "https://download.pytorch.org/models/resnet34-b627a593.pth",
    50: "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    101: "https://download.pytorch.org/models/resnet101-63fe2227.pth",
}
LAYOUTS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
}


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inp: int, planes: int, stride: int, dilation: int, downsample):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, planes, 3, stride, dilation, dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, dilation, dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + skip)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inp: int, planes: int, stride: int, dilation: int, downsample):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        # Stride on the 3x3 convolution, as torchvision's ResNet v1.5.
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, dilation, dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + skip)


class ResNetTrunk(nn.Module):
    """ResNet without ``fc``; layer3 and layer4 dilated (2, 4) instead of strided: OS 8."""

    def __init__(self, depth: int = 101, width: int = 64):
        super().__init__()
        if depth not in LAYOUTS:
            raise ValueError(f"ResNet depth must be one of {sorted(LAYOUTS)}, got {depth}")
        kind, counts = LAYOUTS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._layer(block, width, counts[0], stride=1, dilation=1)
        self.layer2 = self._layer(block, 2 * width, counts[1], stride=2, dilation=1)
        self.layer3 = self._layer(block, 4 * width, counts[2], stride=1, dilation=2)
        self.layer4 = self._layer(block, 8 * width, counts[3], stride=1, dilation=4)
        self.channels = (4 * width * block.expansion, 8 * width * block.expansion)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # Each residual branch starts as the identity (torchvision's zero_init_residual), so
        # a randomly initialised trunk gives bounded activations and a sane first loss.
        for m in self.modules():
            if isinstance(m, (BasicBlock, Bottleneck)):
                last_bn = m.bn3 if isinstance(m, Bottleneck) else m.bn2
                nn.init.zeros_(last_bn.weight)

    def _layer(self, block, planes: int, n: int, stride: int, dilation: int) -> nn.Sequential:
        down = None
        out = planes * block.expansion
        if stride != 1 or self.inplanes != out:
            down = nn.Sequential(
                nn.Conv2d(self.inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out)
            )
        # The first block of a dilated layer uses half the dilation (DeepLab/torchvision).
        blocks = [block(self.inplanes, planes, stride, max(dilation // 2, 1), down)]
        self.inplanes = out
        blocks += [block(out, planes, 1, dilation, None) for _ in range(n - 1)]
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B,3,H,W] -> (layer3 [B,C3,h,w], layer4 [B,C4,h,w]) with h = ceil(H/8)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c3 = self.layer3(self.layer2(self.layer1(x)))
        return c3, self.layer4(c3)


class ASPPHead(nn.Module):
    """Sum of parallel 3x3 convolutions with the given dilations (DeepLab-v2 classifier)."""

    def __init__(self, inp: int, out: int, dilations: tuple[int, ...]):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Conv2d(inp, out, 3, padding=d, dilation=d, bias=True) for d in dilations
        )
        for conv in self.branches:
            nn.init.normal_(conv.weight, 0, 0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(b(x) for b in self.branches)


class JCASOutput(NamedTuple):
    """Stride-8 outputs. ``logits[k]`` [B,C,h,w] and ``features[k]`` [B,D_k,h,w] for the
    auxiliary level (k=0, layer3) and the main level (k=1, layer4). Features are pre-ReLU."""

    logits: tuple[torch.Tensor, torch.Tensor]
    features: tuple[torch.Tensor, ...]


class JCASNet(nn.Module):
    """Two-level DeepLab-v2 with affinity embeddings, as used by JCAS."""

    def __init__(self, num_classes: int, cfg: ModelConfig | None = None):
        super().__init__()
        cfg = cfg or ModelConfig()
        self.num_classes = num_classes
        self.backbone = ResNetTrunk(cfg.depth, cfg.width)
        c3, c4 = self.backbone.channels
        dil = tuple(cfg.aspp_dilations)
        self.cls1 = ASPPHead(c3, num_classes, dil)
        self.cls2 = ASPPHead(c4, num_classes, dil)
        edil = tuple(cfg.embed_dilations or dil)
        self.emb1 = ASPPHead(c3, cfg.embed_dims[0], edil)
        self.emb2 = ASPPHead(c4, cfg.embed_dims[1], edil)

    def forward(self, x: torch.Tensor, with_features: bool = True) -> JCASOutput:
        """x [B,3,H,W] normalised image -> :class:`JCASOutput` at stride 8.

        ``with_features=False`` skips the affinity embeddings (``features`` is then empty):
        the plain DeepLab forward, for CE baselines and timing.
        """
        c3, c4 = self.backbone(x)
        logits = (self.cls1(c3), self.cls2(c4))
        return JCASOutput(logits, (self.emb1(c3), self.emb2(c4)) if with_features else ())

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters of the class heads and embeddings (trained at 10x lr in the paper)."""
        return [p for m in (self.cls1, self.cls2, self.emb1, self.emb2) for p in m.parameters()]


def load_backbone_weights(trunk: ResNetTrunk, source: str | os.PathLike, depth: int) -> list[str]:
    """Load torchvision-named ResNet weights into ``trunk``; returns the ignored keys.

    ``source`` is ``"imagenet"`` (downloaded once with ``torch.hub`` into the torch cache)
    or a path to a ``.pth`` state dict. Raises ``ValueError`` when shapes or keys disagree.
    """
    if str(source) == "imagenet":
        state = torch.hub.load_state_dict_from_url(
            IMAGENET_URLS[depth], progress=True, map_location="cpu"
        )
    else:
        try:
            state = torch.load(source, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, ValueError, pickle.UnpicklingError, EOFError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"{source}: cannot load backbone weights ({first})") from None
        if not isinstance(state, dict):
            raise ValueError(f"{source}: not a state dict (got {type(state).__name__})")
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
    own = trunk.state_dict()
    ignored = [k for k in state if k not in own]
    missing = [k for k in own if k not in state]
    if missing:
        raise ValueError(
            f"{source}: not a ResNet-{depth} state dict; missing {len(missing)} keys, "
            f"e.g. {missing[:3]}"
        )
    bad = [k for k in own if state[k].shape != own[k].shape]
    if bad:
        k = bad[0]
        raise ValueError(
            f"{source}: shape mismatch for {k}: file {tuple(state[k].shape)} vs model "
            f"{tuple(own[k].shape)} (ImageNet weights need width 64 and depth {depth})"
        )
    trunk.load_state_dict({k: state[k] for k in own})
    return ignored


def build_model(cfg: Config, num_classes: int) -> JCASNet:
    """A :class:`JCASNet` for ``cfg``; loads the backbone weights it names.

    Without pretrained weights the trunk is randomly initialised: fine for the synthetic
    data and tests, but real surgical data needs ``pretrained: imagenet`` for good quality.
    """
    net = JCASNet(num_classes, cfg.model)
    if cfg.model.pretrained:
        ignored = load_backbone_weights(net.backbone, cfg.model.pretrained, cfg.model.depth)
        unexpected = [k for k in ignored if not k.startswith("fc.")]
        if unexpected:
            warnings.warn(
                f"ignored {len(unexpected)} unexpected keys, e.g. {unexpected[:3]}", stacklevel=2
            )
    return net
