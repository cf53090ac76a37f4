"""Affinity loss forward+backward: time and peak memory of three forms, each in a fresh process.

- naive: the official form (full S, the N x N x 2 stack times T_A, BCE), ``tests/reference``;
- chunked: ``losses.affinity_loss`` (blocks of rows, checkpointed: S computed twice);
- fused: ``affinity_fused.fused_affinity_loss`` (blocks of rows, gradient formed in forward).

Inputs as in training: features [B,D,32,40] (a leaf), bilinearly resized to the 64x64 grid
inside the measured region, noisy labels with ignore pixels, a learnable T_A.
Time: best of ``--repeats`` forward+backward calls. Peak memory: on CPU the rise of the
process's peak resident memory (VmHWM) over its resident memory before the first call, with
glibc returning large freed blocks to the OS (as ``affinity_memory.py``); on CUDA
``max_memory_allocated`` over the allocation before the first call.

Run: python benchmarks/bench_affinity.py [--dims 2048 256 64] [--batch 3] [--device cpu]
Prints a markdown table (ratios vs naive), the command and the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from affinity_memory import memory_baseline, memory_peak
from requires import add_flag, require

ROOT = Path(__file__).resolve().parents[1]
IMPLS = ("naive", "chunked", "fused")


def child(impl: str, batch: int, dim: int, device: str, chunk: int, repeats: int) -> str:
    """One variant in this (fresh) process: 'seconds peak_bytes loss'."""
    sys.path.insert(0, str(ROOT / "tests"))
    import torch
    from reference import naive_affinity_loss

    from jcas_napari.core.affinity_fused import fused_affinity_loss
    from jcas_napari.core.dar import to_grid
    from jcas_napari.core.losses import affinity_loss, grid_labels
    from jcas_napari.core.transitions import TransitionMatrix

    torch.manual_seed(0)
    grid = (64, 64)
    feats = torch.randn(batch, dim, 32, 40, device=device, requires_grad=True)
    target = torch.randint(0, 4, (batch, 256, 320), device=device)
    target[:, :40, :50] = 255  # an ignored corner, as annotations have
    labels, valid = grid_labels(target, grid)
    tm = TransitionMatrix(2).to(device)

    def step() -> float:
        # The resized features are not held here: in training (losses.level_losses) they
        # are gone by the time backward runs, only what autograd saved remains.
        args = (to_grid(feats, grid), labels, valid, tm())
        if impl == "naive":
            loss = naive_affinity_loss(*args)
        elif impl == "chunked":
            loss = affinity_loss(*args, chunk=chunk)
        else:
            loss = fused_affinity_loss(*args, chunk=chunk)
        del args
        # The leaves' gradients, returned rather than accumulated into .grad buffers.
        torch.autograd.grad(loss, (feats, tm.weight))
        return loss.item()

    base = memory_baseline(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = step()  # .item() waits for the device
        times.append(time.perf_counter() - t0)
    return f"{min(times)} {memory_peak(device, base)} {value}"


def run_child(impl: str, batch: int, dim: int, device: str, chunk: int, repeats: int):
    """(seconds, peak bytes, loss) of one variant, measured in a fresh interpreter."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        impl,
        "--batch",
        str(batch),
        "--dims",
        str(dim),
        "--device",
        device,
        "--chunk",
        str(chunk),
        "--repeats",
        str(repeats),
    ]
    # A fixed mmap threshold returns every large freed block to the OS, so resident memory
    # tracks live tensors instead of glibc's cached heap.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    res = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    sec, peak, value = res.stdout.strip().splitlines()[-1].split()
    return float(sec), int(peak), float(value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dims", type=int, nargs="+", default=[2048, 256, 64])
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--chunk", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--child", choices=IMPLS)
    add_flag(ap)
    a = ap.parse_args()
    require("bench_affinity.py", ("torch", "jcas_napari", "reference"), a.check_imports)
    if a.child:
        print(child(a.child, a.batch, a.dims[0], a.device, a.chunk, a.repeats))
        return
    import torch

    print(f"Command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"Machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, device "
        f"{a.device}, torch {torch.__version__}\n"
    )
    print(
        f"B={a.batch}, features 32x40 -> 64x64 grid (N=4096), chunk {a.chunk}, "
        f"forward+backward best of {a.repeats}\n"
    )
    print("| D | form | time s | time / naive | peak MiB | peak / naive | loss |")
    print("|---|---|---|---|---|---|---|")
    for dim in a.dims:
        res = {i: run_child(i, a.batch, dim, a.device, a.chunk, a.repeats) for i in IMPLS}
        t0, m0 = res["naive"][0], res["naive"][1]
        for impl in IMPLS:
            sec, peak, value = res[impl]
            print(
                f"| {dim} | {impl} | {sec:.3f} | {sec / t0:.2f} | {peak / 2**20:.0f} "
                f"| {peak / m0:.3f} | {value:.6f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
