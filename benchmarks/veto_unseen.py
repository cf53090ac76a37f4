"""The unseen generators' veto for a change to the proposal rule: the issue's protocol on
family c or d (``unseen_family_{c,d}.py``, 6 sequences x 20 frames; ``jcas train --config
small --epochs-warmup 8 --epochs-jcas 8`` from the shipped model), then the core
pipeline's clean with the default rule and with one of ``bench_quality.ABLATIONS``, on the
same model. A change passes when runs that lose more than 0.005 mean foreground Dice
against the given masks are no more than under the default rule.

    python benchmarks/veto_unseen.py WORK [--family c|d|b] [--variant hysteresis]
                                     [--noises ...] [--seeds ...]

``--family b`` runs the same protocol on the project's own family b (``jcas make-dataset
--family b --sequences 6 --frames 20 --vary 1.0``): a report, not a veto, as b was seen.
WORK keeps each run's data and model, so an interrupted veto resumes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from requires import add_flag, require

HERE = Path(__file__).resolve().parent
SEEDS = {"b": [7001, 7002, 7003, 7004], "c": [8101, 8102, 8103], "d": [9101, 9102, 9103]}
JCAS = str(Path(sys.executable).parent / "jcas")


def once(out: Path, cmd: list[str]) -> None:
    """Run ``cmd``, which writes the folder ``out``, unless an earlier run finished it.

    ``out.done`` is written only after ``cmd`` succeeds: a folder that an interrupted run
    left half-written (a data set short of frames, a run with an early best.pt) is
    removed and made again, never used."""
    done = out.with_name(out.name + ".done")
    if done.exists():
        return
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run(cmd, check=True)
    done.touch()


def prepare(work: Path, family: str, noise: str, seed: int) -> tuple[Path, Path]:
    """Generate one data set of generator ``family`` and train on it (skipped when done).
    Family b is the project's own second family, with the issue's protocol settings."""
    data, run = work / f"{noise}_{seed}", work / f"run_{noise}_{seed}"
    gen = [sys.executable, str(HERE / f"unseen_family_{family}.py"), str(data)]
    if family == "b":
        gen = [JCAS, "make-dataset", str(data), "--family", "b", "--sequences", "6"]
        gen += ["--frames", "20", "--vary", "1.0"]
    once(data, [*gen, "--noise", noise, "--seed", str(seed)])
    train = [JCAS, "train", str(data), "--out", str(run), "--config", "small"]
    once(run, [*train, "--epochs-warmup", "8", "--epochs-jcas", "8"])
    return data, run / "checkpoints" / "best.pt"


def deltas(data: Path, best: Path, variant: str) -> dict[str, float]:
    """Delta mean foreground Dice (cleaned - given) under the default rule and the variant."""
    import torch
    from bench_quality import ABLATIONS, cleaned_from, fg_dice

    from jcas_napari.data.io import open_dataset

    ds = open_dataset(data)
    n = len(ds)
    given, truth = [ds[i].mask for i in range(n)], [ds[i].clean for i in range(n)]
    ckpt = torch.load(best, weights_only=True)
    base = fg_dice(zip(given, truth))
    out = {}
    for name, settings in (("default", None), (variant, ABLATIONS[variant])):
        res = cleaned_from([(ckpt, None)], ds, n, "cpu", settings)
        out[name] = fg_dice(zip([r.proposed for r in res], truth)) - base
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", nargs="?", help="folder for the data sets, runs and veto.json")
    ap.add_argument("--variant", default="hysteresis", help="a bench_quality ablation name")
    ap.add_argument(
        "--noises", nargs="+", default=["clean", "boundary", "shift", "swap", "drop", "mixed"]
    )
    ap.add_argument("--family", default="c", choices=sorted(SEEDS))
    ap.add_argument(
        "--seeds", nargs="+", type=int, help="default: 7001-7004 (b), 8101-8103 (c), 9101-9103 (d)"
    )
    add_flag(ap)
    a = ap.parse_args()
    needs = ("numpy", "scipy", "torch", "jcas_napari", *(["skimage"] if a.family == "d" else []))
    require("veto_unseen.py", needs, a.check_imports)
    if a.work is None:
        ap.error("the work folder WORK is required")
    from bench_quality import ABLATIONS  # after require: it imports torch

    if a.variant not in ABLATIONS:  # before any training, not after the first run
        ap.error(f"--variant {a.variant}: not one of {', '.join(ABLATIONS)}")
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    out_file = work / "veto.json"
    results = json.loads(out_file.read_text()) if out_file.exists() else {}
    for noise in a.noises:
        for seed in a.seeds or SEEDS[a.family]:
            key = f"{noise} {seed}"
            if key not in results:
                results[key] = deltas(*prepare(work, a.family, noise, seed), a.variant)
                out_file.write_text(json.dumps(results, indent=1))
            r = results[key]
            print(
                f"{key}: default {r['default']:+.4f}  {a.variant} {r[a.variant]:+.4f}", flush=True
            )
    losses = {k: sum(r[k] < -0.005 for r in results.values()) for k in ("default", a.variant)}
    print(f"runs losing > 0.005: {losses}")


if __name__ == "__main__":
    main()
