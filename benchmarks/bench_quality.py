"""How much label noise does each method remove? Synthetic data with exact ground truth.

For each noise preset and seed, a fresh dataset is generated (frames 256x320, S sequences x
F frames), and every method sees only the noisy masks. Clean masks are used for scoring
only. Hyper-parameters were chosen beforehand on other seeds; nothing here is tuned.

Methods
- noisy: the given masks themselves;
- ce: a CE model trained on the noisy masks; its confident disagreements replace the mask;
- volmin: forward correction with T_C and the volume term, no affinity (VolMin);
- jcas: JCAS (stage 1 + stage 2), in-sample cleaning;
- jcas-kfold: 2 JCAS models, each cleans the sequences it did not see;
- cleanlab: `cleanlab.segmentation.filter.find_label_issues` on the out-of-sample (2-fold)
  probabilities of CE models; flagged pixels take the CE prediction;
- clean-upper: a CE model trained on the clean masks (an upper bound for the predictions).

All model-based methods use the same cleaning rule (core.clean: per-class thresholds from
the validation split). Columns: mean foreground Dice (dataset-level) of the cleaned masks
and of the predictions against the truth; precision and recall of the changed pixels
against the truly wrong pixels; the share of changed pixels that now carry the true class,
and of wrong pixels that now do (a change to another wrong class counts for the first
pair, not for the second); mean absolute error of T_C against the true flip matrix
(symmetric50 and asymmetric50 only).

Run: python benchmarks/bench_quality.py [--presets ...] [--seeds 0 1 2] [--sequences 4]
     [--frames 12] [--epochs 3 5] [--out benchmarks/quality.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from jcas_napari.core.clean import Cleaner
from jcas_napari.core.config import load_config
from jcas_napari.core.metrics import segmentation_scores
from jcas_napari.core.train import fold_splits, run_sync, train
from jcas_napari.data.io import Sample, open_dataset
from jcas_napari.data.make import make_dataset
from jcas_napari.data.noise import ASYMMETRIC50, symmetric_matrix

PRESETS = ["symmetric50", "asymmetric50", "ellipse", "mix", "markov"]
TRUE_T = {"symmetric50": symmetric_matrix(4, 0.5), "asymmetric50": ASYMMETRIC50}
METHODS = ["noisy", "ce", "volmin", "jcas", "jcas-kfold", "cleanlab", "clean-upper"]


@dataclass
class CleanView:
    """A dataset whose 'noisy' masks are the clean ones (for the upper bound)."""

    base: object

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> Sample:
        s = self.base[i]
        return Sample(s.id, s.sequence, s.image, s.clean, s.clean)

    def sequences(self):
        return self.base.sequences()

    @property
    def classes(self):
        return self.base.classes


def fg_dice(pairs) -> float:
    return segmentation_scores(pairs, 4)["dataset"]["mean_dice"]


def detection(noisy, clean, proposed) -> dict[str, float]:
    """How the changed pixels relate to the truly wrong ones.

    precision / recall: changed pixels that were wrong / wrong pixels that were changed
    (a change counts even if the new class is wrong too); fixed_precision / fixed_recall:
    changed pixels that now carry the true class / wrong pixels that now do.
    """
    tp = fp = fn = fixed = 0
    for n, c, p in zip(noisy, clean, proposed):
        wrong, changed = n != c, p != n
        tp += int((wrong & changed).sum())
        fp += int((~wrong & changed).sum())
        fn += int((wrong & ~changed).sum())
        fixed += int((changed & (p == c)).sum())
    return {"precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1),
            "fixed_precision": fixed / max(tp + fp, 1), "fixed_recall": fixed / max(tp + fn, 1)}


def train_model(ds, cfg, run: Path, method: str, seed: int, device: str, indices=None) -> dict:
    """Train one model; the contents of its best checkpoint."""
    res = run_sync(train(ds, cfg, run, method=method, seed=seed, device=device,
                         train_indices=indices))  # fmt: skip
    return torch.load(res.best, weights_only=True)


def probs_of(ckpt: dict, ds, indices, device: str) -> dict[int, np.ndarray]:
    cleaner = Cleaner(ckpt, device=device)
    out = {}
    for start in range(0, len(indices), 8):
        batch = indices[start : start + 8]
        for i, p in zip(batch, cleaner.probabilities([ds[i].image for i in batch])):
            out[i] = p
    return out


def cleaned_from(ckpt_probs: list[tuple[dict, dict[int, np.ndarray]]], ds, n: int, device: str):
    """Apply the cleaning rule of each model to the frames it owns; proposed and predictions."""
    proposed, preds = [None] * n, [None] * n
    for ckpt, probs in ckpt_probs:
        cleaner = Cleaner(ckpt, device=device)
        for i, p in probs.items():
            r = cleaner.clean_frame(i, "", p, ds[i].mask)
            proposed[i], preds[i] = r.proposed, r.prediction
    return proposed, preds


def run_one(preset: str, seed: int, args, tmp: Path) -> dict:
    root = tmp / f"{preset}_{seed}"
    make_dataset(root, sequences=args.sequences, frames=args.frames, noise=preset,
                 seed=1000 + seed)  # fmt: skip
    ds = open_dataset(root)
    n = len(ds)
    noisy = [ds[i].mask for i in range(n)]
    clean = [ds[i].clean for i in range(n)]
    cfg = load_config("small")
    cfg.train.epochs_warmup, cfg.train.epochs_jcas = args.epochs
    out: dict[str, dict] = {"noisy": {"cleaned": fg_dice(zip(noisy, clean))}}
    every = list(range(n))

    def score(name: str, ckpt_probs, t_c=None) -> None:
        proposed, preds = cleaned_from(ckpt_probs, ds, n, args.device)
        row = {"cleaned": fg_dice(zip(proposed, clean)), "pred": fg_dice(zip(preds, clean)),
               **detection(noisy, clean, proposed)}  # fmt: skip
        if t_c is not None and preset in TRUE_T:
            row["t_mae"] = float(np.abs(np.asarray(t_c) - TRUE_T[preset]).mean())
        out[name] = row

    for method, name in (("ce", "ce"), ("volmin", "volmin"), ("jcas", "jcas")):
        ckpt = train_model(ds, cfg, tmp / f"run_{name}", method, seed, args.device)
        t_c = ckpt["t_c"].numpy() if method != "ce" else None
        score(name, [(ckpt, probs_of(ckpt, ds, every, args.device))], t_c)

    folds = fold_splits(ds.sequences(), 2, seed)
    jk, ce_oos = [], {}
    for f, held in enumerate(folds):
        rest = sorted(set(every) - set(held))
        ck = train_model(ds, cfg, tmp / f"run_jk{f}", "jcas", seed, args.device, rest)
        jk.append((ck, probs_of(ck, ds, held, args.device)))
        cc = train_model(ds, cfg, tmp / f"run_ck{f}", "ce", seed, args.device, rest)
        ce_oos.update(probs_of(cc, ds, held, args.device))
    score("jcas-kfold", jk)

    from cleanlab.segmentation.filter import find_label_issues

    pred_probs = np.stack([ce_oos[i] for i in every]).astype(np.float32)
    labels = np.stack(noisy).astype(np.int64)
    issues = find_label_issues(labels, pred_probs, downsample=1, n_jobs=1, verbose=False)
    cl_pred = pred_probs.argmax(1)
    proposed = [np.where(issues[i], cl_pred[i], noisy[i]).astype(np.uint8) for i in every]
    out["cleanlab"] = {"cleaned": fg_dice(zip(proposed, clean)),
                       "pred": fg_dice(zip(cl_pred.astype(np.uint8), clean)),
                       **detection(noisy, clean, proposed)}  # fmt: skip

    ckpt = train_model(CleanView(ds), cfg, tmp / "run_upper", "ce", seed, args.device)
    score("clean-upper", [(ckpt, probs_of(ckpt, ds, every, args.device))])
    return out


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name()
    return "CPU"


def fmt(vals: list[float]) -> str:
    vals = [v for v in vals if v is not None]
    if not vals:
        return "—"
    return f"{np.mean(vals):.3f} ± {np.std(vals, ddof=1) if len(vals) > 1 else 0:.3f}"


def table(results: dict) -> str:
    lines = []
    for preset, runs in results.items():
        lines += [f"\n**{preset}** ({len(runs)} seeds)\n",
                  "| method | mDice cleaned masks | mDice predictions | changed-px precision "
                  "| changed-px recall | changed px now right | wrong px now right | T_C MAE |",
                  "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for m in METHODS:
            col = [r.get(m, {}) for r in runs]
            lines.append(
                f"| {m} | {fmt([c.get('cleaned') for c in col])} | "
                f"{fmt([c.get('pred') for c in col])} | {fmt([c.get('precision') for c in col])}"
                f" | {fmt([c.get('recall') for c in col])}"
                f" | {fmt([c.get('fixed_precision') for c in col])}"
                f" | {fmt([c.get('fixed_recall') for c in col])}"
                f" | {fmt([c.get('t_mae') for c in col])}"
                " |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--presets", nargs="+", default=PRESETS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--sequences", type=int, default=4)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--epochs", nargs=2, type=int, default=[3, 5])
    ap.add_argument("--out", default="benchmarks/quality.json")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (training and inference)")
    args = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    results: dict[str, list] = {}
    t0 = time.time()
    for preset in args.presets:
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as tmp:
                results.setdefault(preset, []).append(run_one(preset, seed, args, Path(tmp)))
            print(f"{preset} seed {seed} done at {time.time() - t0:.0f} s", file=sys.stderr,
                  flush=True)  # fmt: skip
            Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"Command: python benchmarks/bench_quality.py {' '.join(sys.argv[1:])}")
    print(f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"{_device_name(args.device)}; "
          f"total {time.time() - t0:.0f} s")  # fmt: skip
    print(table(results))


if __name__ == "__main__":
    main()
