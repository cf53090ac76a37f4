"""Peak memory of one forward+backward of the affinity loss, ours vs the naive official form.

Each measurement runs in a fresh process. On CUDA it reads torch.cuda.max_memory_allocated;
on CPU the rise of the process's peak resident memory (VmHWM) over its resident memory
just before the loss.

Run: python benchmarks/affinity_memory.py [--grid 64 64 --batch 2 --dim 64 --device cpu]
Prints JSON: {"naive": bytes, "ours": bytes, "ratio": ours / naive}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from requires import add_flag, require

ROOT = Path(__file__).resolve().parents[1]


def _status_bytes(field: str) -> int:
    """A memory field of /proc/self/status (VmRSS: now, VmHWM: peak of this process image).

    VmHWM starts afresh at exec, unlike ru_maxrss, which a child inherits from its parent.
    """
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_baseline(device: str) -> int:
    """Bytes in use now: the CUDA allocator's (with its peak reset), or resident memory."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    return _status_bytes("VmRSS")


def memory_peak(device: str, base: int) -> int:
    """Peak bytes above ``base`` since ``memory_baseline``."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    return _status_bytes("VmHWM") - base


def child(impl: str, grid: tuple[int, int], batch: int, dim: int, device: str, chunk: int) -> int:
    sys.path.insert(0, str(ROOT / "tests"))
    import torch
    from reference import naive_affinity_loss

    from jcas_napari.core.losses import affinity_loss, grid_labels
    from jcas_napari.core.transitions import TransitionMatrix

    torch.manual_seed(0)
    h, w = grid
    feats = torch.randn(batch, dim, h, w, device=device, requires_grad=True)
    target = torch.randint(0, 4, (batch, 4 * h, 5 * w), device=device)
    labels, valid = grid_labels(target, grid)
    t_a = TransitionMatrix(2).to(device)()
    base = memory_baseline(device)
    if impl == "naive":
        loss = naive_affinity_loss(feats, labels, valid, t_a)
    else:
        loss = affinity_loss(feats, labels, valid, t_a, chunk=chunk)
    loss.backward()
    return memory_peak(device, base)


def measure(grid=(64, 64), batch=2, dim=64, device="cpu", chunk=512) -> dict:
    """Run both implementations in fresh processes; return their peaks and the ratio."""
    out = {}
    for impl in ("naive", "ours"):
        cmd = [
            sys.executable,
            __file__,
            "--child",
            impl,
            "--grid",
            *map(str, grid),
            "--batch",
            str(batch),
            "--dim",
            str(dim),
            "--device",
            device,
            "--chunk",
            str(chunk),
        ]
        # A fixed mmap threshold makes glibc return every large freed block to the OS, so
        # resident memory tracks live tensors (the dynamic threshold would keep freed
        # chunks in the heap and inflate the chunked version's peak).
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
        res = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
        out[impl] = int(res.stdout.strip().splitlines()[-1])
    out["ratio"] = out["ours"] / out["naive"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--grid", type=int, nargs=2, default=(64, 64))
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--chunk", type=int, default=512)
    ap.add_argument("--child", choices=("naive", "ours"))
    add_flag(ap)
    a = ap.parse_args()
    require("affinity_memory.py", ("torch", "jcas_napari", "reference"), a.check_imports)
    if a.child:
        print(child(a.child, tuple(a.grid), a.batch, a.dim, a.device, a.chunk))
    else:
        print(json.dumps(measure(tuple(a.grid), a.batch, a.dim, a.device, a.chunk)))


if __name__ == "__main__":
    main()
