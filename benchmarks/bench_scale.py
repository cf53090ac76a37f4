"""Does cleaning scale? Time per frame and peak memory over 100, 1,000 and 5,000 frames.

Frames are generated once (256x320, 50 sequences x 100 frames) and hard-linked into
datasets of the first N frames. Each `clean` runs in a fresh process with the shipped
model; its peak resident memory (VmHWM) and wall time are reported.

Run: python benchmarks/bench_scale.py [--sizes 100 1000 5000] [--work /tmp/jcas_scale]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from requires import add_flag, require

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "jcas-small-synthetic.pt"


def peak_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(dataset: str, out: str) -> None:
    from jcas_napari.batch import clean_to_folder
    from jcas_napari.data.io import open_dataset

    t0 = time.perf_counter()
    ds = open_dataset(dataset)
    clean_to_folder(ds, [(MODEL, None)], out, device="cpu")
    print(f"{len(ds)} {time.perf_counter() - t0:.2f} {peak_mib():.0f}")


def subset(full: Path, n: int, dst: Path) -> Path:
    """A dataset of the first n frames of ``full`` (hard links, no copies)."""
    if dst.exists():
        return dst
    ids = sorted(
        p.relative_to(full / "images").with_suffix("") for p in (full / "images").rglob("*.png")
    )[:n]
    for folder in ("images", "masks", "masks_clean"):
        for fid in ids:
            src = full / folder / f"{fid}.png"
            target = dst / folder / f"{fid}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(src, target)
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", nargs="+", type=int, default=[100, 1000, 5000])
    ap.add_argument("--work", default="/tmp/jcas_scale")
    ap.add_argument("--child", nargs=2)
    add_flag(ap)
    args = ap.parse_args()
    require("bench_scale.py", ("torch", "jcas_napari"), args.check_imports)
    if args.child:
        child(*args.child)
        return
    from jcas_napari.data.make import make_dataset

    work = Path(args.work)
    full = work / "full"
    n_max = max(args.sizes)
    if not full.exists():
        t0 = time.perf_counter()
        make_dataset(full, sequences=max(1, n_max // 100), frames=min(100, n_max), noise="mix")
        print(f"generated {n_max} frames in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    print(f"Command: python benchmarks/bench_scale.py --sizes {' '.join(map(str, args.sizes))}")
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, CPU, shipped small model\n")
    print("| frames | wall s | ms per frame | peak RSS MiB |\n|---|---|---|---|")
    for n in args.sizes:
        ds = subset(full, n, work / f"n{n}")
        out = work / f"out{n}"
        res = subprocess.run(
            [sys.executable, __file__, "--child", str(ds), str(out)],
            capture_output=True,
            text=True,
            check=True,
        )
        frames, secs, peak = res.stdout.split()
        print(
            f"| {frames} | {float(secs):.1f} | {1000 * float(secs) / int(frames):.1f} | {peak} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
