"""Which starting model should ship? The rule the shipped model is chosen by, as a script.

Each candidate (``--init``: checkpoints; the first is the incumbent, normally the shipped
model) is fine-tuned with JCAS as the quality benchmark's default path does (``small``
config, 3 + 5 epochs, ``bench_quality.train_model``) on development datasets: families a
and b x presets clean, markov, mix, ellipse, symmetric50 x development seeds 5000 + s
(4 sequences x 12 frames; never the benchmark's seeds 1000 + s, never the third
generator). Each model cleans its dataset with the default rule (``core.clean.clean``).

Per cell (family, preset) the mean over seeds of: Δ = cleaned minus given mean
foreground Dice, the model's own Dice ("pred"), the share of pixels changed, and the
learned T_C's error on symmetric50. Then the rule, set before the runs that used it:
a candidate replaces the incumbent if no clean or markov cell's mean Δ falls by more than
0.002 and the sum of the cells' mean Δ rises.

Run: python benchmarks/compare_init.py --init jcas_napari/models/jcas-small-synthetic.pt NEW.pt
     [--families a b] [--presets ...] [--seeds 0 1 2] [--out compare_init.json]
     [--merge EARLIER.json ...]

``--merge`` adds the rows of earlier runs of the same checkpoints (their ``--out`` files,
matched by file name) before the table and the rule: more seeds for some cells, say. With
``--seeds`` and no numbers, only the merged rows are judged.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_quality import cleaned_from, detection, fg_dice, t_errors, train_model
from requires import add_flag, require

from jcas_napari.core.checkpoint import CheckpointError, load_checkpoint
from jcas_napari.core.config import load_config
from jcas_napari.data.io import open_dataset
from jcas_napari.data.make import make_dataset

PRESETS = ["clean", "markov", "mix", "ellipse", "symmetric50"]
GUARDED = ("clean", "markov")  # presets where any change is harm or a coin flip
MAX_FALL = 0.002
DEV_SEED = 5000


def score_one(init: str, family: str, preset: str, seed: int, tmp: Path) -> dict:
    """Fine-tune from ``init`` on one development dataset and score its cleaning."""
    root = tmp / f"{family}_{preset}_{seed}"
    if not root.exists():
        make_dataset(
            root, sequences=4, frames=12, noise=preset, seed=DEV_SEED + seed, family=family
        )
    ds = open_dataset(root)
    n = len(ds)
    noisy = [ds[i].mask for i in range(n)]
    truth = [ds[i].clean for i in range(n)]
    cfg = load_config("small")
    cfg.train.epochs_warmup, cfg.train.epochs_jcas = 3, 5
    with tempfile.TemporaryDirectory(dir=tmp) as run:
        ckpt = train_model(ds, cfg, Path(run), "jcas", seed, "cpu", None, init)
    res = cleaned_from([(ckpt, None)], ds, n, "cpu")
    proposed = [r.proposed for r in res]
    return {
        "delta": fg_dice(zip(proposed, truth)) - fg_dice(zip(noisy, truth)),
        "pred": fg_dice(zip([r.prediction for r in res], truth)),
        "changed": detection(noisy, truth, proposed)["changed"],
        **t_errors(ckpt, preset),
    }


def cell_means(rows: list[dict]) -> dict[str, dict[str, float]]:
    """{"family preset": mean of each number over the seeds}."""
    cells: dict[str, list[dict]] = {}
    for row in rows:
        cells.setdefault(f"{row['family']} {row['preset']}", []).append(row)
    keys = ("delta", "pred", "changed", "t_mae")
    return {
        cell: {k: float(np.mean([r[k] for r in rs])) for k in keys if k in rs[0]}
        for cell, rs in cells.items()
    }


def merged(rows: dict[str, list[dict]], files: list[str]) -> dict[str, list[dict]]:
    """``rows`` ({checkpoint: rows}) with the rows of earlier ``--out`` files added.

    Checkpoints are matched by file name. A checkpoint that is not in ``rows``, or a
    (family, preset, seed) scored twice, is an error: a cell must not count a run twice.
    """
    out = {name: list(r) for name, r in rows.items()}
    by_file = {Path(n).name: n for n in out}
    for f in files:
        for name, more in json.loads(Path(f).read_text()).items():
            key = by_file.get(Path(name).name)
            if key is None:
                raise ValueError(f"{f}: {Path(name).name} is not one of the --init checkpoints")
            out[key] += more
    check_repeats(out)
    return out


def check_repeats(rows: dict[str, list[dict]]) -> None:
    """ValueError if a checkpoint's rows score one (family, preset, seed) twice."""
    for name, rs in rows.items():
        seen = [(r["family"], r["preset"], r["seed"]) for r in rs if "seed" in r]
        if len(seen) != len(set(seen)):
            raise ValueError(f"{Path(name).name}: a (family, preset, seed) is scored twice")


def verdict(incumbent: dict, candidate: dict) -> tuple[bool, str]:
    """Apply the rule to two {cell: means}; (replace?, why)."""
    falls = {
        c: incumbent[c]["delta"] - candidate[c]["delta"]
        for c in incumbent
        if c.split()[1] in GUARDED and c in candidate
    }
    worst = max(falls, key=falls.get) if falls else None
    sums = [sum(m["delta"] for m in t.values()) for t in (incumbent, candidate)]
    # Written so that a NaN anywhere refuses: a broken run must never replace a model.
    if worst is not None and not falls[worst] <= MAX_FALL:
        return False, f"{worst} falls by {falls[worst]:.4f} (> {MAX_FALL})"
    if not sums[1] > sums[0]:
        return False, f"sum of cell means {sums[1]:.4f} does not rise above {sums[0]:.4f}"
    return True, f"sum {sums[0]:.4f} -> {sums[1]:.4f}, no guarded cell falls by > {MAX_FALL}"


def table(names: list[str], cells: list[dict]) -> str:
    """Markdown: one row per cell, one column per candidate (pred / Δ / changed or T_C)."""
    lines = ["| cell | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for cell in cells[0]:
        out = []
        for c in cells:
            m = c.get(cell)
            if m is None:
                out.append("—")
                continue
            extra = f"T_C {m['t_mae']:.3f}" if "t_mae" in m else f"{100 * m['changed']:.2f}%"
            out.append(f"{m['pred']:.3f} / {m['delta']:+.4f} / {extra}")
        lines.append(f"| {cell} | " + " | ".join(out) + " |")
    sums = [f"{sum(m['delta'] for m in c.values()):.4f}" for c in cells]
    lines.append("| sum of the cell means | " + " | ".join(sums) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--init", nargs="+", help="checkpoints; the first is the incumbent")
    ap.add_argument("--families", nargs="+", default=["a", "b"], choices=["a", "b"])
    ap.add_argument("--presets", nargs="+", default=PRESETS, choices=PRESETS)
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--out", default="compare_init.json")
    ap.add_argument("--merge", nargs="+", default=[], help="earlier --out files to add")
    add_flag(ap)
    args = ap.parse_args()
    require("compare_init.py", ["jcas_napari"], args.check_imports)
    if not args.init or len(args.init) < 2:
        ap.error("--init needs the incumbent and at least one candidate")
    for name in args.init:  # a wrong file fails here, not after the first fine-tune
        try:
            load_checkpoint(name)
        except CheckpointError as exc:
            ap.error(str(exc))
    try:  # read once; a wrong --merge file fails here, before any fine-tune
        earlier = merged({name: [] for name in args.init}, args.merge)
    except (OSError, ValueError, KeyError) as exc:
        ap.error(f"--merge: {exc}")
    t0 = time.time()
    rows: dict[str, list[dict]] = {name: [] for name in args.init}
    with tempfile.TemporaryDirectory() as tmp:
        for family, preset, seed in itertools.product(args.families, args.presets, args.seeds):
            for name in args.init:
                row = score_one(name, family, preset, seed, Path(tmp))
                rows[name].append({"family": family, "preset": preset, "seed": seed, **row})
            done = f"{family} {preset} seed {seed} done at {time.time() - t0:.0f} s"
            print(done, file=sys.stderr, flush=True)
            Path(args.out).write_text(json.dumps(rows, indent=1))
    rows = {name: rows[name] + earlier[name] for name in args.init}
    try:
        check_repeats(rows)
    except ValueError as exc:  # a seed run here and in a merged file
        ap.error(f"--merge: {exc}")
    cells = [cell_means(rows[name]) for name in args.init]
    print(f"Command: python benchmarks/compare_init.py {' '.join(sys.argv[1:])}")
    print(
        f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, CPU; "
        f"total {time.time() - t0:.0f} s"
    )
    print(table([Path(n).name for n in args.init], cells))
    for name, c in zip(args.init[1:], cells[1:]):
        ok, why = verdict(cells[0], c)
        print(
            f"{Path(name).name}: {'replaces' if ok else 'does not replace'} "
            f"{Path(args.init[0]).name}: {why}"
        )


if __name__ == "__main__":
    main()
