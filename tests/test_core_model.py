"""The JCAS network: shapes of both configs, torchvision-compatible weights, configs."""

from __future__ import annotations

import pytest
import torch

from jcas_napari.core.config import available_configs, load_config
from jcas_napari.core.model import (
    IMAGENET_URLS,
    JCASNet,
    ResNetTrunk,
    build_model,
    load_backbone_weights,
)

# Counts of torchvision's resnet18/50 state dicts (params + BN buffers + fc.weight/bias).
TORCHVISION_KEYS = {18: 122, 50: 320}


def torchvision_like_state(depth: int) -> dict[str, torch.Tensor]:
    """A state dict shaped and named like torchvision's resnet{depth}(), fc included."""
    trunk = ResNetTrunk(depth, 64)
    state = {
        k: torch.randn_like(v.float()).to(v.dtype) if v.dtype.is_floating_point else v
        for k, v in trunk.state_dict().items()
    }
    state["fc.weight"] = torch.randn(1000, trunk.channels[1])
    state["fc.bias"] = torch.randn(1000)
    return state


@pytest.mark.parametrize("depth", [18, 50])
def test_torchvision_key_names(depth):
    state = torchvision_like_state(depth)
    assert len(state) == TORCHVISION_KEYS[depth]
    for key in (
        "conv1.weight",
        "bn1.running_var",
        "layer1.0.conv1.weight",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.num_batches_tracked",
        "layer4.1.bn2.bias",
    ):
        assert key in state
    if depth == 50:
        assert state["layer4.2.conv3.weight"].shape == (2048, 512, 1, 1)
        assert state["layer3.5.bn3.running_mean"].shape == (1024,)


def test_resnet50_state_dict_loads_from_local_file(tmp_path):
    state = torchvision_like_state(50)
    path = tmp_path / "resnet50.pth"
    torch.save(state, path)
    cfg = load_config("small")
    cfg.model.depth, cfg.model.width, cfg.model.pretrained = 50, 64, str(path)
    net = build_model(cfg, 4)
    torch.testing.assert_close(net.backbone.layer3[5].conv2.weight, state["layer3.5.conv2.weight"])
    torch.testing.assert_close(net.backbone.bn1.running_mean, state["bn1.running_mean"])


def test_imagenet_route_uses_torch_hub_cache(tmp_path, monkeypatch):
    """pretrained="imagenet" goes through torch.hub; a cached file means no download."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    state = torchvision_like_state(18)
    torch.save(state, cache / IMAGENET_URLS[18].rsplit("/", 1)[1])
    trunk = ResNetTrunk(18, 64)
    ignored = load_backbone_weights(trunk, "imagenet", 18)
    assert sorted(ignored) == ["fc.bias", "fc.weight"]
    torch.testing.assert_close(trunk.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])


def test_wrong_weights_give_clear_errors(tmp_path):
    torch.save(torchvision_like_state(18), tmp_path / "r18.pth")
    with pytest.raises(ValueError, match="not a ResNet-50 state dict"):
        load_backbone_weights(ResNetTrunk(50, 64), tmp_path / "r18.pth", 50)
    with pytest.raises(ValueError, match="shape mismatch for conv1.weight"):
        load_backbone_weights(ResNetTrunk(18, 32), tmp_path / "r18.pth", 18)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth: cannot load"):
        load_backbone_weights(ResNetTrunk(18, 32), tmp_path / "junk.pth", 18)


def test_small_config_forward_shapes_and_grad():
    cfg = load_config("small")
    net = build_model(cfg, 4)
    x = torch.randn(2, 3, cfg.input.height, cfg.input.width)
    out = net(x)
    assert [tuple(t.shape) for t in out.logits] == [(2, 4, 16, 20)] * 2
    assert [tuple(t.shape) for t in out.features] == [(2, 32, 16, 20), (2, 64, 16, 20)]
    out.logits[1].mean().backward()
    assert net.backbone.conv1.weight.grad is not None


def test_deeplab_r101_forward_shapes():
    cfg = load_config("deeplab-r101")
    assert cfg.model.depth == 101 and cfg.affinity.grid == (64, 64)
    assert (cfg.input.height, cfg.input.width) == (256, 320)
    cfg.model.pretrained = None  # no download in tests
    net = build_model(cfg, 4).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, 256, 320))
    assert [tuple(t.shape) for t in out.logits] == [(1, 4, 32, 40)] * 2
    assert [tuple(t.shape) for t in out.features] == [(1, 128, 32, 40), (1, 256, 32, 40)]
    n_params = sum(p.numel() for p in net.backbone.parameters())
    assert 42_000_000 < n_params < 43_000_000  # torchvision resnet101 minus fc: 42.5 M


def test_aspp_dilation_option():
    cfg = load_config("small")
    cfg.model.aspp_dilations = (6, 12)
    net = JCASNet(4, cfg.model)
    assert [b.dilation for b in net.cls2.branches] == [(6, 6), (12, 12)]
    assert len(build_model(load_config("small"), 4).cls2.branches) == 4


def test_configs_and_errors(tmp_path):
    assert {"small", "deeplab-r101"} <= set(available_configs())
    with pytest.raises(ValueError, match="unknown config 'tiny'"):
        load_config("tiny")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  depht: 18\n")
    with pytest.raises(ValueError, match="unknown key"):
        load_config(bad)
