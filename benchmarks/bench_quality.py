"""How much label noise does each method remove? Synthetic data with exact ground truth.

For each noise preset and seed, a fresh dataset is generated (frames 256x320, S sequences x
F frames, scene family ``--family``), and every method sees only the noisy masks. Clean
masks are used for scoring only. Nothing here was tuned on these seeds (1000 + seed).

Methods (``--methods``), all starting from the same weights (``--init``: random, or a
checkpoint such as the shipped model) and all cleaned by the same core pipeline
(``core.clean.clean``: the T_C posterior rule, the guard, the cap, regions, TTA, video):
- noisy: the given masks themselves;
- ce: a CE model trained on the noisy masks (backward-corrected with its anchor T);
- volmin: forward correction with T_C and the volume term, no affinity (VolMin);
- jcas: JCAS (stage 1 + stage 2), in-sample cleaning;
- "jcas <ablation>": the same JCAS model with one part of the rule changed (``ablations``);
- jcas-kfold: 2 JCAS models, each cleans the sequences it did not see (out-of-sample);
- cleanlab: `cleanlab.segmentation.filter.find_label_issues` on the out-of-sample (2-fold)
  probabilities of CE models; flagged pixels take the CE prediction;
- clean-upper: a CE model trained on the clean masks; its predictions (an upper bound).

Columns: mean foreground Dice (dataset-level) of the cleaned masks and of the predictions;
the share of pixels changed (the score of the ``clean`` preset); precision and recall of
the changed pixels against the truly wrong ones; the share of changed pixels that now carry
the true class; the precision of the 20 best-scored regions (a region is right when
accepting it alone raises its frame's Dice); regions per frame; T_C errors against the true
flip matrix (symmetric50 / asymmetric50): the learned T_C and the held-out anchor estimate.

Run: python benchmarks/bench_quality.py [--presets ...] [--seeds 0 1 2] [--family a|b]
     [--init none|CKPT] [--methods ...] [--ablations ...] [--epochs 3 5] [--out ...]
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
from requires import add_flag, require

from jcas_napari.core.clean import Cleaner, RuleSettings, clean
from jcas_napari.core.config import load_config
from jcas_napari.core.metrics import segmentation_scores
from jcas_napari.core.train import fold_splits, run_sync, train
from jcas_napari.data.io import Sample, open_dataset
from jcas_napari.data.make import make_dataset
from jcas_napari.data.noise import ASYMMETRIC50, symmetric_matrix

PRESETS = ["clean", "symmetric50", "asymmetric50", "ellipse", "mix", "markov"]
TRUE_T = {"symmetric50": symmetric_matrix(4, 0.5), "asymmetric50": ASYMMETRIC50}
METHODS = ["noisy", "ce", "volmin", "jcas", "jcas-kfold", "cleanlab", "clean-upper"]
# Ablations of the proposal rule, each on the same in-sample JCAS model.
ABLATIONS = {
    "no-temporal": RuleSettings(temporal=False),
    "no-min-area": RuleSettings(min_area=1, merge_radius=0),
    "posterior-0.8": RuleSettings(min_posterior=0.8),
    "one-T": RuleSettings(boundary_bands=False),
    "no-part-check": RuleSettings(part_check=False),
    "no-drawn-gaps": RuleSettings(drawn_gaps=0),
    "border-overall": RuleSettings(border_from_inner=False),
    "t-all-frames": RuleSettings(t_from_trained=False),
    "hysteresis": RuleSettings(join_posterior=0.3),
}


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
    changed pixels that now carry the true class / wrong pixels that now do; changed: the
    share of all pixels changed (the score of the ``clean`` preset).
    """
    tp = fp = fn = fixed = n = 0
    for g, c, p in zip(noisy, clean, proposed):
        wrong, changed = g != c, p != g
        tp += int((wrong & changed).sum())
        fp += int((~wrong & changed).sum())
        fn += int((wrong & ~changed).sum())
        fixed += int((changed & (p == c)).sum())
        n += g.size
    return {
        "precision": tp / max(tp + fp, 1) if tp + fp else None,
        "recall": tp / max(tp + fn, 1) if tp + fn else None,
        "fixed_precision": fixed / max(tp + fp, 1) if tp + fp else None,
        "fixed_recall": fixed / max(tp + fn, 1) if tp + fn else None,
        "changed": (tp + fp) / max(n, 1),
    }


def frame_dice(mask: np.ndarray, truth: np.ndarray) -> float:
    return segmentation_scores([(mask, truth)], 4)["dataset"]["mean_dice"]


def top_precision(results, noisy, clean, top: int = 20) -> float | None:
    """Share of the ``top`` best-scored regions (over all frames) whose acceptance alone
    raises that frame's foreground Dice against the truth."""
    regions = [(reg.score, r.index, reg.label) for r in results for reg in r.region_info]
    regions.sort(key=lambda x: -x[0])
    by_index = {r.index: r for r in results}
    right = 0
    for _, i, lab in regions[:top]:
        m = by_index[i].regions == lab
        fixed = np.where(m, by_index[i].proposed, noisy[i])
        right += frame_dice(fixed, clean[i]) > frame_dice(noisy[i], clean[i])
    return right / len(regions[:top]) if regions else None


def train_model(
    ds, cfg, run: Path, method: str, seed: int, device: str, indices=None, init=None
) -> dict:
    """Train one model; the contents of its best checkpoint."""
    res = run_sync(
        train(
            ds,
            cfg,
            run,
            method=method,
            seed=seed,
            device=device,
            train_indices=indices,
            init_checkpoint=init,
        )
    )
    return torch.load(res.best, weights_only=True)


def probs_of(ckpt: dict, ds, indices, device: str) -> dict[int, np.ndarray]:
    cleaner = Cleaner(ckpt, device=device)
    out = {}
    for start in range(0, len(indices), 8):
        batch = indices[start : start + 8]
        for i, p in zip(batch, cleaner.probabilities([ds[i].image for i in batch])):
            out[i] = p
    return out


def cleaned_from(models, ds, n: int, device: str, settings=None, why: dict | None = None):
    """Run the core pipeline (``core.clean.clean``) with each model on the frames it owns.

    ``why`` receives what limited the models: the guard's reason (if it stopped a model),
    the change cap (the noise rate T implies) and the rule's T_C."""
    results = []
    for ckpt, indices in models:
        cleaner = Cleaner(ckpt, device=device, settings=settings)
        results += list(clean(ds, cleaner, indices=indices))
        if why is not None:
            why.setdefault("guard", []).append(cleaner.weak_reason)
            why.setdefault("cap", []).append(cleaner.noise_rate)
            why.setdefault("t_rule", []).append(cleaner.t_c.tolist())
    results.sort(key=lambda r: r.index)
    assert len(results) == n
    return results


def t_errors(ckpt: dict, preset: str) -> dict:
    if preset not in TRUE_T:
        return {}
    out = {}
    for key, name in (("t_c", "t_mae"), ("t_c_anchor", "t_anchor_mae")):
        err = np.abs(np.asarray(ckpt[key]) - TRUE_T[preset])
        out[name], out[name.replace("mae", "max")] = float(err.mean()), float(err.max())
    return out


def run_one(preset: str, seed: int, args, tmp: Path) -> dict:
    root = tmp / f"{preset}_{seed}"
    make_dataset(
        root,
        sequences=args.sequences,
        frames=args.frames,
        noise=preset,
        seed=1000 + seed,
        family=args.family,
    )
    ds = open_dataset(root)
    n = len(ds)
    noisy = [ds[i].mask for i in range(n)]
    truth = [ds[i].clean for i in range(n)]
    cfg = load_config(args.config)
    cfg.train.epochs_warmup, cfg.train.epochs_jcas = args.epochs
    init = None if args.init == "none" else args.init
    out: dict[str, dict] = {"noisy": {"cleaned": fg_dice(zip(noisy, truth))}}
    every = list(range(n))

    def score(name: str, models, ckpt=None, settings=None) -> None:
        why: dict = {}
        res = cleaned_from(models, ds, n, args.device, settings, why)
        proposed = [r.proposed for r in res]
        row = {
            "cleaned": fg_dice(zip(proposed, truth)),
            "pred": fg_dice(zip([r.prediction for r in res], truth)),
            "top20": top_precision(res, noisy, truth),
            **detection(noisy, truth, proposed),
            "regions_per_frame": float(np.mean([len(r.region_info) for r in res])),
        }
        if ckpt is not None:
            row.update(t_errors(ckpt, preset))
            row["stage2_epochs"] = list(ckpt.get("schedule", [])).count(2)  # after any stretch
        if preset in TRUE_T:  # the T the rule used, estimated on the frames being cleaned
            err = np.abs(np.asarray(why["t_rule"]) - TRUE_T[preset])
            row["t_rule_mae"], row["t_rule_max"] = float(err.mean()), float(err.max())
        row["guard"] = [g for g in why["guard"] if g]
        row["cap"] = why["cap"]
        out[name] = row

    for method in [m for m in ("ce", "volmin", "jcas") if m in args.methods]:
        ckpt = train_model(ds, cfg, tmp / f"run_{method}", method, seed, args.device, None, init)
        score(method, [(ckpt, None)], ckpt)
        if method == "jcas" and "ablations" in args.methods:
            for name in args.ablations:
                score(f"jcas {name}", [(ckpt, None)], None, ABLATIONS[name])
    if "jcas-kfold" in args.methods or "cleanlab" in args.methods:
        kfold(ds, cfg, args, tmp, seed, init, every, noisy, truth, out, score)
    if "clean-upper" in args.methods:
        ckpt = train_model(CleanView(ds), cfg, tmp / "run_upper", "ce", seed, args.device)
        out["clean-upper"] = {
            "cleaned": fg_dice(
                zip([p.argmax(0) for p in probs_of(ckpt, ds, every, args.device).values()], truth)
            )
        }
    return out


def kfold(ds, cfg, args, tmp, seed, init, every, noisy, truth, out, score) -> None:
    """Out-of-sample: 2 models, each cleans the sequences it did not see; and cleanlab on
    the out-of-sample probabilities of 2 CE models."""
    folds = fold_splits(ds.sequences(), 2, seed)
    jk, ce_oos = [], {}
    for f, held in enumerate(folds):
        rest = sorted(set(every) - set(held))
        if "jcas-kfold" in args.methods:
            ck = train_model(ds, cfg, tmp / f"run_jk{f}", "jcas", seed, args.device, rest, init)
            jk.append((ck, held))
        if "cleanlab" in args.methods:
            cc = train_model(ds, cfg, tmp / f"run_ck{f}", "ce", seed, args.device, rest, init)
            ce_oos.update(probs_of(cc, ds, held, args.device))
    if jk:
        score("jcas-kfold", jk)
    if ce_oos:
        from cleanlab.segmentation.filter import find_label_issues

        pred_probs = np.stack([ce_oos[i] for i in every]).astype(np.float32)
        labels = np.stack(noisy).astype(np.int64)
        issues = find_label_issues(labels, pred_probs, downsample=1, n_jobs=1, verbose=False)
        cl_pred = pred_probs.argmax(1)
        proposed = [np.where(issues[i], cl_pred[i], noisy[i]).astype(np.uint8) for i in every]
        out["cleanlab"] = {
            "cleaned": fg_dice(zip(proposed, truth)),
            "pred": fg_dice(zip(cl_pred.astype(np.uint8), truth)),
            **detection(noisy, truth, proposed),
        }


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name()
    return "CPU"


def fmt(vals: list[float]) -> str:
    vals = [v for v in vals if v is not None]
    if not vals:
        return "—"
    return f"{np.mean(vals):.3f} ± {np.std(vals, ddof=1) if len(vals) > 1 else 0:.3f}"


COLUMNS = [
    ("cleaned", "mDice cleaned"),
    ("pred", "mDice predictions"),
    ("changed", "px changed"),
    ("precision", "changed-px precision"),
    ("recall", "changed-px recall"),
    ("fixed_precision", "changed px now right"),
    ("top20", "top-20 region precision"),
    ("regions_per_frame", "regions / frame"),
    ("t_mae", "T_C MAE"),
    ("t_max", "T_C max err"),
    ("t_anchor_mae", "anchor T MAE"),
    ("stage2_epochs", "stage-2 epochs"),
]


def table(results: dict) -> str:
    lines = []
    for preset, runs in results.items():
        names = list(dict.fromkeys(m for r in runs for m in r))
        lines += [
            f"\n**{preset}** ({len(runs)} seeds)\n",
            "| method | " + " | ".join(c[1] for c in COLUMNS) + " |",
            "|---" * (len(COLUMNS) + 1) + "|",
        ]
        for m in names:
            col = [r.get(m, {}) for r in runs]
            cells = [fmt([c.get(key) for c in col]) for key, _ in COLUMNS]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def needs_of(methods: list[str]) -> list[str]:
    """The modules a run with ``methods`` imports: cleanlab only for the cleanlab method."""
    return ["numpy", "torch", "jcas_napari", *(["cleanlab"] if "cleanlab" in methods else [])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--presets", nargs="+", default=PRESETS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--sequences", type=int, default=4)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--epochs", nargs=2, type=int, default=[3, 5])
    ap.add_argument("--config", default="small", help="small, or a .yaml path (a variant)")
    ap.add_argument("--out", default="benchmarks/quality.json")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (training and inference)")
    ap.add_argument("--family", default="a", help="scene family: a, or b (domain shift)")
    ap.add_argument(
        "--init", default="none", help="none (random init) or a checkpoint every method starts from"
    )
    ap.add_argument("--methods", nargs="+", default=METHODS[1:] + ["ablations"])
    ap.add_argument("--ablations", nargs="+", default=list(ABLATIONS), choices=list(ABLATIONS))
    add_flag(ap)
    args = ap.parse_args()
    require("bench_quality.py", needs_of(args.methods), args.check_imports)
    try:  # a wrong --config fails here, not after the first dataset
        load_config(args.config)
    except (OSError, ValueError) as exc:
        ap.error(f"--config: {exc}")
    torch.set_num_threads(torch.get_num_threads())
    results: dict[str, list] = {}
    t0 = time.time()
    for preset in args.presets:
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as tmp:
                results.setdefault(preset, []).append(run_one(preset, seed, args, Path(tmp)))
            print(
                f"{preset} seed {seed} done at {time.time() - t0:.0f} s",
                file=sys.stderr,
                flush=True,
            )
            Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"Command: python benchmarks/bench_quality.py {' '.join(sys.argv[1:])}")
    print(
        f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"{_device_name(args.device)}; "
        f"total {time.time() - t0:.0f} s"
    )
    print(table(results))


if __name__ == "__main__":
    main()
