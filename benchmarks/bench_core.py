"""Core speed and memory ratios, each pair measured in one run on the same inputs.

1. stage-2 JCAS training step time / plain-CE step time, same backbone (target <= 1.3);
2. affinity-loss peak memory, ours / the naive official form, 64x64 grid (target <= 0.25);
3. DAR inference time / bare forward (target <= 1.2).

Run: python benchmarks/bench_core.py [--configs small deeplab-r101] [--device cpu|cuda]
Prints a markdown section for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from affinity_memory import measure

from jcas_napari.core.config import load_config
from jcas_napari.core.infer import predict
from jcas_napari.core.model import build_model
from jcas_napari.core.train import ce_step, jcas_step, make_optimiser, make_t_optimiser
from jcas_napari.core.transitions import TransitionMatrix


def _time(fn, repeats: int, device: str) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_config(name: str, batch: int, repeats: int, device: str) -> dict:
    cfg = load_config(name)
    cfg.model.pretrained = None  # timing does not depend on the weights
    torch.manual_seed(0)
    h, w = cfg.input.height, cfg.input.width
    x = torch.randn(batch, 3, h, w, device=device)
    y = torch.randint(0, 4, (batch, h, w), device=device)
    prior = torch.tensor([0.84, 0.09, 0.02, 0.05], device=device)
    net = build_model(cfg, 4).to(device).train()
    tc, ta = TransitionMatrix(4).to(device), TransitionMatrix(2).to(device)
    opts = [make_optimiser(net, 1e-4), make_t_optimiser(tc, ta, 1e-3)]
    ce_opt = make_optimiser(net, 1e-4)
    # Interleave the two kinds of step so that machine noise hits both alike.
    ce_t, jcas_t = [], []
    for _ in range(repeats):
        ce_t.append(_time(lambda: ce_step(net, x, y, cfg, ce_opt), 1, device))
        jcas_t.append(_time(lambda: jcas_step(net, x, y, cfg, opts, (tc, ta), prior), 1, device))
    net.eval()
    bare = _time(lambda: predict(net, x, cfg, refine=False), repeats, device)
    refined = _time(lambda: predict(net, x, cfg, refine=True), repeats, device)
    return {
        "config": name, "batch": batch, "size": f"{h}x{w}", "grid": cfg.affinity.grid,
        "ce_step": statistics.median(ce_t), "jcas_step": statistics.median(jcas_t),
        "bare_infer": bare, "dar_infer": refined,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--configs", nargs="+", default=["small"])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    print(f"Machine: {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch threads, device {args.device}, "
          f"torch {torch.__version__}\n")  # fmt: skip
    print("| config | input | batch | grid | CE step s | JCAS stage-2 step s | ratio (<=1.3) "
          "| bare infer s | DAR infer s | ratio (<=1.2) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.configs:
        # The big config at batch 4 does not fit the CPU budget; a GPU takes the full batch.
        batch = args.batch if name == "small" or args.device != "cpu" else min(args.batch, 2)
        r = bench_config(name, batch, args.repeats, args.device)
        print(f"| {r['config']} | {r['size']} | {r['batch']} | {r['grid'][0]}x{r['grid'][1]} "
              f"| {r['ce_step']:.3f} | {r['jcas_step']:.3f} | {r['jcas_step'] / r['ce_step']:.2f} "
              f"| {r['bare_infer']:.3f} | {r['dar_infer']:.3f} "
              f"| {r['dar_infer'] / r['bare_infer']:.2f} |")  # fmt: skip
    mem = measure((64, 64), batch=2, dim=64, device=args.device, chunk=512)
    print(f"\nAffinity loss forward+backward, 64x64 grid, batch 2, D=64: naive "
          f"{mem['naive'] / 2**20:.0f} MiB, ours {mem['ours'] / 2**20:.0f} MiB, "
          f"ratio {mem['ratio']:.3f} (<= 0.25)")  # fmt: skip


if __name__ == "__main__":
    main()
