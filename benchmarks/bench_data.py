"""Time the data layer: scene generation, each noise preset, and a full make-dataset run.

Run: python benchmarks/bench_data.py [--frames 50 --sequences 4]
Prints a markdown table; paste it into benchmarks/RESULTS.md with the machine it ran on.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
from requires import add_flag, require

from jcas_napari.data.make import make_dataset
from jcas_napari.data.noise import PRESETS, corrupt
from jcas_napari.data.synthetic import make_sequence


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--sequences", type=int, default=4)
    add_flag(ap)
    args = ap.parse_args()
    require("bench_data.py", ("numpy", "PIL", "jcas_napari"), args.check_imports)
    t0 = time.perf_counter()
    _, masks = make_sequence(args.frames, np.random.default_rng(0))
    gen = (time.perf_counter() - t0) / args.frames
    print("| step | ms per 256x320 frame |\n|---|---|")
    print(f"| scene generation | {1000 * gen:.1f} |")
    for name in PRESETS:
        t0 = time.perf_counter()
        for i, m in enumerate(masks[:20]):
            corrupt(m, name, np.random.default_rng(i))
        print(f"| noise `{name}` | {1000 * (time.perf_counter() - t0) / 20:.1f} |")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        make_dataset(f"{tmp}/ds", sequences=args.sequences, frames=args.frames, noise="mix")
        total = time.perf_counter() - t0
    n = args.sequences * args.frames
    print(
        f"\n`make_dataset` {args.sequences}x{args.frames} frames, preset mix, PNG output: "
        f"{total:.1f} s ({1000 * total / n:.0f} ms/frame)"
    )


if __name__ == "__main__":
    main()
