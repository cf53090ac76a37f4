"""Affinity-loss peak memory against the naive form, and the inference options."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from affinity_memory import measure  # noqa: E402

from jcas_napari.core.config import load_config  # noqa: E402
from jcas_napari.core.infer import predict, to_tensor  # noqa: E402
from jcas_napari.core.model import build_model  # noqa: E402


def test_affinity_loss_peak_memory_at_most_a_quarter_of_naive():
    mem = measure(grid=(64, 64), batch=2, dim=64, device="cpu", chunk=512)
    # The naive form holds several B x N x N float32 tensors: well over 500 MiB here.
    assert mem["naive"] > 500 * 2**20
    assert mem["ratio"] <= 0.25, mem


def test_to_tensor_normalises_rgb():
    img = np.zeros((2, 4, 5, 3), np.uint8)
    img[..., 0] = 255
    x = to_tensor(img)
    assert x.shape == (2, 3, 4, 5) and x.dtype == torch.float32
    assert x[0, 0, 0, 0].item() > 2 and x[0, 1, 0, 0].item() < -1.9


def test_predict_probabilities_and_official_variant():
    cfg = load_config("small")
    torch.manual_seed(0)
    net = build_model(cfg, 4).eval()
    x = torch.randn(2, 3, 64, 80)
    p = predict(net, x, cfg)
    assert p.shape == (2, 4, 64, 80)
    torch.testing.assert_close(p.sum(1), torch.ones(2, 64, 80))
    raw = predict(net, x, cfg, refine=False)
    official = predict(net, x, cfg, official_test_time=True)
    torch.testing.assert_close(official.sum(1), torch.ones(2, 64, 80))
    assert not torch.allclose(p, raw) and not torch.allclose(p, official)


def test_release_freed_memory_returns_heap_pages_on_linux():
    import sys

    from jcas_napari.core.memory import release_freed_memory

    if not sys.platform.startswith("linux"):
        assert release_freed_memory() is False
        return

    def rss_mib() -> float:
        with open("/proc/self/status") as fh:
            return next(int(ln.split()[1]) / 1024 for ln in fh if ln.startswith("VmRSS:"))

    # Small blocks (below the mmap threshold), one in 64 kept alive: the freed pages lie
    # between live blocks, so glibc cannot return them by shrinking the heap's top and
    # keeps them until they are trimmed.
    blocks = [bytearray(4000) for _ in range(50_000)]  # ~200 MiB
    pin = blocks[::64]
    before = rss_mib()
    del blocks
    freed = rss_mib()
    assert release_freed_memory() is True
    after = rss_mib()
    assert after < freed - 50, (before, freed, after)
    del pin
