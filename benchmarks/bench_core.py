"""Core speed and memory ratios, every pair measured in one run on the same inputs.

1. stage-2 JCAS training step time / plain-CE step time, same backbone (target <= 1.3);
2. DAR inference time / bare forward (target <= 1.2);
3. fused affinity loss / the naive official form (full S, N x N x 2 stack), forward +
   backward time on the config's own grid and feature size;
4. affinity-loss peak memory, ours / naive, 64x64 grid (target <= 0.25), fresh processes.

The timed calls of 1-3 take turns in one loop (CE step, JCAS step, bare forward, DAR
forward, naive loss, fused loss, again), so machine noise hits both sides of every ratio.
``--profile`` adds torch.profiler tables (top rows by self CPU time) of a CE step and of a
JCAS stage-2 step, with the operator calls and host reads per step.

Run: python benchmarks/bench_core.py [--configs small deeplab-r101] [--device cpu|cuda]
     [--repeats 5] [--profile] [--check-imports]
Prints a markdown section for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

from requires import add_flag, require

NEEDS = ("torch", "jcas_napari", "affinity_memory", "reference")
HOST_READS = ("aten::_local_scalar_dense", "aten::is_nonzero")  # .item(), bool(tensor)


def _timed(fn: Callable[[], object], device: str) -> float:
    """Seconds of one ``fn()`` call (the device's queue drained before and after)."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def setup(name: str, batch: int, device: str) -> tuple[dict, dict]:
    """The calls to time for config ``name``: a dict of label -> zero-argument function,
    and the config's facts (input size, grid, feature size)."""
    import torch
    from reference import naive_affinity_loss

    from jcas_napari.core.affinity_fused import fused_affinity_loss
    from jcas_napari.core.config import load_config
    from jcas_napari.core.dar import to_grid
    from jcas_napari.core.infer import predict
    from jcas_napari.core.losses import grid_labels
    from jcas_napari.core.model import build_model
    from jcas_napari.core.train import ce_step, jcas_step, make_optimiser, make_t_optimiser
    from jcas_napari.core.transitions import TransitionMatrix

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
    grid = tuple(cfg.affinity.grid)
    with torch.no_grad():
        feats = to_grid(net(x).features[1], grid)
    feats.requires_grad_(True)
    labels, valid = grid_labels(y, grid)

    def loss(fn) -> Callable[[], None]:
        return lambda: fn(feats, labels, valid, ta()).backward()

    def infer(refine: bool) -> Callable[[], object]:
        def run():
            net.eval()
            out = predict(net, x, cfg, refine=refine)
            net.train()
            return out

        return run

    calls = {
        "ce_step": lambda: ce_step(net, x, y, cfg, ce_opt),
        "jcas_step": lambda: jcas_step(net, x, y, cfg, opts, (tc, ta), prior),
        "bare_infer": infer(False),
        "dar_infer": infer(True),
        "naive_aff": loss(naive_affinity_loss),
        "fused_aff": loss(
            lambda f, lab, v, t: fused_affinity_loss(f, lab, v, t, cfg.affinity.chunk)
        ),
    }
    facts = {
        "config": name,
        "batch": batch,
        "size": f"{h}x{w}",
        "grid": grid,
        "dim": feats.shape[1],
    }
    return calls, facts


def bench_config(name: str, batch: int, repeats: int, device: str) -> dict:
    """Median seconds of every call of ``setup``, the calls taking turns ``repeats`` times."""
    calls, facts = setup(name, batch, device)
    times: dict[str, list[float]] = {k: [] for k in calls}
    for fn in calls.values():
        fn()  # warm-up: allocator, oneDNN primitives, optimiser state
    for _ in range(repeats):
        for k, fn in calls.items():
            times[k].append(_timed(fn, device))
    return {**facts, **{k: statistics.median(v) for k, v in times.items()}}


def profile(name: str, batch: int, device: str, steps: int, rows: int) -> None:
    """torch.profiler tables of ``steps`` CE steps and ``steps`` JCAS stage-2 steps."""
    import torch
    from torch.profiler import ProfilerActivity

    calls, facts = setup(name, batch, device)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    for key, label in (("ce_step", "CE step"), ("jcas_step", "JCAS stage-2 step")):
        calls[key]()  # warm-up outside the profile
        with torch.profiler.profile(activities=acts) as prof:
            for _ in range(steps):
                calls[key]()
        ev = prof.key_averages()
        n_ops = sum(e.count for e in ev)
        reads = sum(e.count for e in ev if e.key in HOST_READS)
        print(
            f"\n**{name} ({facts['size']}, batch {batch}), {label}**: {n_ops / steps:.0f} "
            f"operator calls and {reads / steps:.0f} host reads (item / bool) per step, "
            f"{steps} steps profiled; top {rows} by self CPU time:\n"
        )
        print("```")
        print(ev.table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=40))
        print("```")


def _row(r: dict) -> str:
    grid = f"{r['grid'][0]}x{r['grid'][1]}"
    return (
        f"| {r['config']} | {r['size']} | {r['batch']} | {grid} | {r['ce_step']:.3f} | "
        f"{r['jcas_step']:.3f} | {r['jcas_step'] / r['ce_step']:.2f} | "
        f"{r['bare_infer']:.3f} | {r['dar_infer']:.3f} | "
        f"{r['dar_infer'] / r['bare_infer']:.2f} | {r['naive_aff']:.4f} | "
        f"{r['fused_aff']:.4f} | {r['fused_aff'] / r['naive_aff']:.2f} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--configs", nargs="+", default=["small"])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--profile", action="store_true", help="print torch.profiler tables")
    ap.add_argument("--profile-steps", type=int, default=3)
    ap.add_argument("--rows", type=int, default=15, help="rows of each profile table")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory ratio")
    add_flag(ap)
    args = ap.parse_args()
    require("bench_core.py", NEEDS, args.check_imports)
    import torch
    from affinity_memory import measure

    print(
        f"Machine: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, device {args.device}, "
        f"torch {torch.__version__}\n"
    )
    print(
        "| config | input | batch | grid | CE step s | JCAS stage-2 step s | ratio (<=1.3) "
        "| bare infer s | DAR infer s | ratio (<=1.2) | naive aff. loss s | fused aff. "
        "loss s | ratio |"
    )
    print("|---" * 13 + "|")
    # The big config at batch 4 does not fit the CPU budget; a GPU takes the full batch.
    batches = {
        n: args.batch if n == "small" or args.device != "cpu" else min(args.batch, 2)
        for n in args.configs
    }
    for name in args.configs:
        print(_row(bench_config(name, batches[name], args.repeats, args.device)), flush=True)
    if not args.no_memory:
        mem = measure((64, 64), batch=2, dim=64, device=args.device, chunk=512)
        print(
            f"\nAffinity loss forward+backward, 64x64 grid, batch 2, D=64: naive "
            f"{mem['naive'] / 2**20:.0f} MiB, ours {mem['ours'] / 2**20:.0f} MiB, "
            f"ratio {mem['ratio']:.3f} (<= 0.25)"
        )
    if args.profile:
        for name in args.configs:
            profile(name, batches[name], args.device, args.profile_steps, args.rows)


if __name__ == "__main__":
    main()
