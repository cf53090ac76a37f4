"""The batch pipeline: a dataset on disk in, cleaned files out.

``clean_to_folder`` runs the core cleaning (``core.pipeline.clean_models``) over a whole
dataset, resumably and under a lock (sharded across torchrun ranks by ``shard``), and
writes the cleaned masks in the user's format, change regions, confidence, scores and a
markdown report. Used by ``jcas clean`` and ``jcas run``; napari-free (matplotlib with
the Agg backend).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from jcas_napari import shard
from jcas_napari.core.checkpoint import load_checkpoint
from jcas_napari.core.clean import CleaningResult, RuleSettings
from jcas_napari.core.guards import frames_note
from jcas_napari.core.pipeline import clean_models
from jcas_napari.core.propose import band_names
from jcas_napari.data.io import (
    ClassInfo,
    Dataset,
    atomic_write_bytes,
    encode_png,
    read_mask,
    write_image,
)
from jcas_napari.data.mask_format import MaskFormat, encode_mask, output_targets, stack_output
from jcas_napari.data.viz import class_colours, overlay, palette
from jcas_napari.output_state import check_clean_output, output_lock, resume_state, stale_note
from jcas_napari.plots import draw_heatmap


def write_frame_outputs(
    out: Path, result: CleaningResult, target: tuple[Path, MaskFormat], classes: ClassInfo
) -> None:
    """A frame's cleaned mask at ``target`` (its path in the dataset's layout and the input
    mask's format, from :func:`output_targets`), OUT/changes (16-bit region ids) and
    OUT/confidence (0-255)."""
    rel, fmt = target
    atomic_write_bytes(out / rel, encode_mask(result.proposed, fmt, classes))
    regions = np.minimum(result.regions, 65535).astype(np.uint16)
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(regions).save(buf, format="PNG")
    atomic_write_bytes(out / "changes" / f"{result.id}.png", buf.getvalue())
    conf = (np.clip(result.confidence, 0, 1) * 255 + 0.5).astype(np.uint8)
    atomic_write_bytes(out / "confidence" / f"{result.id}.png", encode_png(conf))


def finish_outputs(
    out: Path,
    dataset: Dataset,
    targets: Sequence[tuple[Path, MaskFormat]],
    notes: list[str] | None = None,
) -> None:
    """Join a TIFF-stack dataset's cleaned frames into OUT/masks.tif (the input's bit
    depth), copy the class map file, so that OUT reads like the input, and note what the
    formats could not keep. ``targets``: :func:`output_targets` of ``dataset``."""
    stack = stack_output(dataset)
    if stack is not None:
        rel, fmt = stack
        masks = np.stack([read_mask(out / path, dataset.classes) for path, _ in targets])
        atomic_write_bytes(out / rel, encode_mask(masks, fmt, dataset.classes))
    source = dataset.class_source
    if source is not None and source.is_file():
        atomic_write_bytes(out / source.name, source.read_bytes())
    changes = {fmt.change for _, fmt in targets} - {""}
    if notes is not None:
        notes += [f"cleaned masks: {c}" for c in sorted(changes)]


def write_scores(out: Path, rows: Sequence[dict]) -> Path:
    """OUT/scores.csv, frames ranked worst first by noise score."""
    ranked = sorted(rows, key=lambda r: -r["noise_score"])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["rank", "id", "noise_score", "changed_fraction", "regions"])
    w.writeheader()
    for rank, r in enumerate(ranked, start=1):
        w.writerow({"rank": rank, **r})
    # surrogateescape: frame ids from non-UTF-8 file names keep their original bytes.
    return atomic_write_bytes(out / "scores.csv", buf.getvalue().encode(errors="surrogateescape"))


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())


def _loss_plot(out: Path, history: list[dict]) -> None:
    """OUT/report/losses.png: the training losses and the validation agreement per epoch."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    epochs = [h["epoch"] for h in history]
    for key in ("total", "seg2", "aff1"):
        ax.plot(epochs, [h.get(key, np.nan) for h in history], label=key)
    if any("val_noisy_acc" in h for h in history):
        ax2 = ax.twinx()
        ax2.plot(
            epochs, [h.get("val_noisy_acc", np.nan) for h in history], "k--", label="val noisy acc"
        )
        ax2.set_ylabel("validation agreement", fontsize=8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, out / "report" / "losses.png")
    plt.close(fig)


def write_report(
    out: Path,
    checkpoint: dict,
    scores: Sequence[dict],
    worst: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray, str]],
    colours: np.ndarray | None = None,
    used: dict | None = None,
) -> Path:
    """OUT/report.md with T_C / T_A heatmaps, what the cleaning rule used, loss curves and
    the worst frames.

    ``worst`` yields (image, given mask, proposed mask, frame id) for the frames to show;
    ``colours`` (K,3) are the class colours (the dataset's own palette, if it has one);
    ``used`` is what ``clean_models`` reports per model (``rule_transitions``).
    """
    names = list(checkpoint["class_names"])
    k = len(names)
    _transitions_figure(out, checkpoint, names)
    history = list(checkpoint.get("history", []))
    if history:
        _loss_plot(out, history)

    lines = [
        "# jcas clean report",
        "",
        f"{len(scores)} frames cleaned. Frames ranked by noise score are in `scores.csv`.",
        "",
        "## Estimated transition matrices",
        "",
        "![T_C and T_A](report/transitions.png)",
        "",
    ]
    lines += rule_lines(used or {}, names)
    if history:
        lines += ["## Training", "", "![losses](report/losses.png)", ""]
    lines += ["## Worst frames", "", "image | given mask | proposed mask", ""]
    cols = palette(k) if colours is None else np.asarray(colours, np.uint8)
    for image, given, proposed, fid in worst:
        views = [overlay(image, m, 0.6, k, colours=cols) for m in (given, proposed)]
        name = fid.replace("/", "__") + ".png"
        write_image(out / "report" / name, np.concatenate([image, *views], 1))
        row = next(s for s in scores if s["id"] == fid)
        lines += [
            f"**{fid}**: noise score {row['noise_score']:.3f}, "
            f"{100 * row['changed_fraction']:.1f}% of pixels changed",
            "",
            f"![{fid}](report/{name})",
            "",
        ]
    legend = ", ".join(f"{n} rgb{tuple(int(v) for v in cols[i])}" for i, n in enumerate(names))
    lines += ["## Colours", "", f"{legend} (the first class is not drawn over the image)", ""]
    text = "\n".join(lines).encode(errors="surrogateescape")
    return atomic_write_bytes(out / "report.md", text)


def _transitions_figure(out: Path, checkpoint: dict, names: list[str]) -> None:
    """OUT/report/transitions.png: the checkpoint's T_C [K,K] and T_A [2,2] heatmaps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratios = [len(names), 2]
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.2), gridspec_kw={"width_ratios": ratios})
    draw_heatmap(axes[0], np.asarray(checkpoint["t_c"]), names, "T_C: P(noisy class | clean)")
    draw_heatmap(axes[1], np.asarray(checkpoint["t_a"]), ["dissimilar", "similar"], "T_A")
    fig.tight_layout()
    _save(fig, out / "report" / "transitions.png")
    plt.close(fig)


def rule_lines(used: dict, names: list[str]) -> list[str]:
    """Markdown: per model, the share of labels its T_C (estimated on these frames) takes
    as right, T[i, i] per class, overall and per band of distance to the drawn borders,
    and the part -> part changes it was not allowed to make."""
    if not used:
        return []
    lines = ["## What the cleaning rule used", ""]
    lines += ["P(label right | clean class) = T_C[i, i], estimated on the frames cleaned.", ""]
    for model, u in used.items():
        rows = [("all pixels (sets the change cap)", u["t_c"])]
        rows += list(zip(band_names(), u["t_bands"] or []))
        lines += [f"**{model}**: change cap {100 * u['noise_rate']:.2f}% of a frame", ""]
        note = frames_note(*(u.get("t_frames") or (0, False)))
        lines += [note, ""] if note else []
        for drawn, other in u.get("blocked") or []:
            why = f"the model calls more drawn {drawn} {other} than {drawn}"
            lines += [f"No {drawn} → {other} changes: {why}.", ""]
        if u.get("drawn_gaps"):
            wide = 2 * u["drawn_gaps"]
            lines += [
                f"Gaps in a drawn part up to about {wide:g} model input px wide are kept as "
                "drawn: the model's output grid is coarser than that (docs/method.md).",
                "",
            ]
        lines += ["| pixels | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for label, t in rows:
            diag = " | ".join(f"{v:.2f}" for v in np.diag(np.asarray(t)))
            lines.append(f"| {label} | {diag} |")
        lines.append("")
    return lines


def clean_to_folder(
    dataset: Dataset,
    models: Sequence[tuple[os.PathLike | str, Sequence[int] | None]],
    out: os.PathLike | str,
    *,
    threshold: float | None = None,
    device: str = "auto",
    progress=None,
    n_worst: int = 4,
    notes: list[str] | None = None,
) -> list[dict]:
    """Clean ``dataset`` into ``out``: masks/, changes/, confidence/, scores.csv, report.md.

    ``models`` pairs each checkpoint with the frame indices it cleans (None: all frames);
    K-fold cross-fitting passes one model per fold. ``progress(n)`` is called per frame.
    ``threshold`` overrides the rule's minimum posterior. A model that fails the weak-model
    guard writes the given masks unchanged; its reason is appended to ``notes``.
    Never writes into the dataset folder. Returns the score rows.
    """
    out = check_clean_output(out, dataset)
    with shard.group_lock(out, output_lock):
        return _clean_locked(dataset, models, out, threshold, device, progress, n_worst, notes)


def _clean_locked(dataset, models, out: Path, threshold, device, progress, n_worst, notes):
    """``clean_to_folder`` while holding the output folder's lock. Under torchrun each rank
    cleans its share and rank 0 writes scores.csv and the report (``shard``); the other
    ranks return []."""
    # Decided once, by rank 0, so that no rank sees another's new sidecars or model hash.
    settings = RuleSettings() if threshold is None else RuleSettings(min_posterior=threshold)
    done, keys, owner = shard.from_rank0(lambda: resume_state(dataset, models, out, settings))
    index = {f.id: i for i, f in enumerate(dataset.frames)}
    redone = stale_note(done, keys)

    def finished(i: int, ckpt) -> bool:
        return done.get(dataset.frames[i].id, {}).get("model") == keys[str(ckpt)]

    targets = output_targets(dataset)  # each input mask's header read once
    written, my_notes, used = {}, [], {}
    skip = shard.share(len(dataset), models, finished)
    for r in clean_models(
        dataset, models, settings=settings, device=device, skip=skip, notes=my_notes, used=used
    ):
        write_frame_outputs(out, r, targets[r.index], dataset.classes)
        row = {
            "id": r.id,
            "noise_score": round(r.noise_score, 6),
            "changed_fraction": round(r.changed_fraction, 6),
            "regions": len(r.region_info),
        }
        # Written last: a frame counts as done only once all its files are complete, and
        # only for the same model (a rerun with another model redoes it).
        sidecar = {**row, "model": owner[r.index]}
        atomic_write_bytes(out / "scores" / f"{r.id}.json", json.dumps(sidecar).encode())
        written[r.id] = sidecar
        if progress:
            progress(1)
    merged = shard.merge(written, my_notes)
    if merged is None:
        return []
    done.update(merged[0])
    if notes is not None:
        notes.extend(merged[1] + redone)
    if progress and len(merged[0]) > len(written):
        progress(len(merged[0]) - len(written))  # the frames the other ranks cleaned
    rows = [
        {k: v for k, v in done[f.id].items() if k != "model"}
        for f in dataset.frames
        if f.id in done
    ]
    write_scores(out, rows)
    finish_outputs(out, dataset, targets, notes)
    worst_ids = [r["id"] for r in sorted(rows, key=lambda r: -r["noise_score"])[:n_worst]]

    def worst():
        for fid in worst_ids:
            s = dataset[index[fid]]
            cleaned = read_mask(out / targets[index[fid]][0], dataset.classes)
            yield s.image, s.mask, cleaned, fid

    used = rule_transitions(out, used)
    ckpt = load_checkpoint(models[0][0])
    write_report(out, ckpt, rows, worst(), class_colours(dataset.classes), used)
    return rows


def rule_transitions(out: Path, used: dict) -> dict:
    """The T_C each model's rule used, kept in OUT/report/rule_t.json: a resumed run whose
    frames were all done cleans nothing, so it reads them back instead (none if the file
    is missing or damaged)."""
    path = out / "report" / "rule_t.json"
    if used:
        atomic_write_bytes(path, json.dumps(used).encode())
        return used
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # absent or damaged: the report leaves the section out
        return {}
