"""Generate the bad-input corpus: every way a dataset, a checkpoint or an output can be wrong.

Nothing binary is committed: ``build(root)`` writes each case into ``root/<name>/`` and
returns the cases with the message their error must contain.

Run: python tests/corpus/make_corpus.py OUT   (to look at the files)
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile
import torch
from PIL import Image

from jcas_napari.data.io import frame_path, write_image, write_mask, write_stack

H, W = 32, 40
ALL_EVAL = ("train", "clean", "check", "reader", "evaluate")
MODEL = Path(__file__).resolve().parents[2] / "models" / "jcas-small-synthetic.pt"


@dataclass
class Case:
    name: str
    path: Path  # the dataset (or the file standing in for one)
    expect: str  # a substring of the one-line error
    commands: tuple[str, ...] = ("train", "clean", "check", "reader")
    model: Path | None = None  # for checkpoint cases
    out: Path | None = None  # for output cases
    extra: dict = field(default_factory=dict)


def good(root: Path, frames: int = 2) -> Path:
    """A valid flat dataset of ``frames`` frames (H x W)."""
    rng = np.random.default_rng(0)
    for i in range(frames):
        write_image(
            frame_path(root, "images", f"f{i}"), rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
        )
        m = np.zeros((H, W), np.uint8)
        m[8:20, 10:30] = 1 + i % 3
        write_mask(frame_path(root, "masks", f"f{i}"), m)
    return root


def _replace_mask(root: Path, name: str, write) -> None:
    for p in (root / "masks").glob(f"{name}.*"):
        p.unlink()
    write(root / "masks")


def build(root: Path) -> list[Case]:
    root = Path(root)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    cases: list[Case] = []

    def case(name: str, expect: str, commands=("train", "clean", "check", "reader"), **kw):
        cases.append(Case(name, root / name, expect, tuple(commands), **kw))
        return root / name

    # ---- structure
    (case("empty_folder", "empty dataset")).mkdir()
    (case("images_folder_empty", "no images found") / "images").mkdir(parents=True)
    d = good(case("image_without_mask", "image has no mask"))
    (d / "masks" / "f1.png").unlink()
    d = good(case("mask_without_image", "mask has no image"))
    (d / "images" / "f1.png").unlink()
    d = good(case("duplicate_frame_names", "two files for frame"))
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(d / "images" / "f0.jpg")
    d = good(case("masks_folder_missing", "masks folder is missing"))
    shutil.rmtree(d / "masks")
    d = good(case("clean_mask_missing", "no clean mask"))
    write_mask(d / "masks_clean" / "f0.png", np.zeros((H, W), np.uint8))
    f = case("path_is_a_file", "not a folder")
    f.write_text("not a dataset")
    case("path_missing", "does not exist")
    d = case("symlink_loop", "no images found")
    (d / "images").mkdir(parents=True)
    (d / "images" / "loop").symlink_to(d / "images", target_is_directory=True)

    # ---- shapes and channels
    d = good(case("shape_mismatch", "shape mismatch"))
    _replace_mask(d, "f1", lambda m: write_mask(m / "f1.png", np.zeros((H - 2, W), np.uint8)))
    d = good(case("mask_extra_channels", "got shape (32, 40, 2)"))
    _replace_mask(
        d,
        "f1",
        lambda m: tifffile.imwrite(
            m / "f1.tif", np.zeros((H, W, 2), np.uint8), photometric="minisblack"
        ),
    )
    d = good(case("rgb_mask_without_palette", "RGB mask"))
    _replace_mask(
        d, "f1", lambda m: Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(m / "f1.png")
    )
    d = good(case("colour_not_in_palette", "is not in the palette"))
    pal = [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]
    (d / "classes.json").write_text(
        json.dumps({"names": ["bg", "shaft", "wrist", "clasper"], "palette": pal})
    )
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[0, 0] = (7, 7, 7)
    for i in range(2):
        _replace_mask(d, f"f{i}", lambda m, i=i: Image.fromarray(rgb).save(m / f"f{i}.png"))
    d = good(case("image_two_channels", "expected one image (H,W) or (H,W,3)"))
    (d / "images" / "f1.png").unlink()
    tifffile.imwrite(
        d / "images" / "f1.tif", np.zeros((H, W, 2), np.uint8), photometric="minisblack"
    )

    # ---- values
    d = good(case("class_id_out_of_range", "unknown class id(s) 9", commands=ALL_EVAL))
    bad = np.zeros((H, W), np.uint8)
    bad[1, 1] = 9
    _replace_mask(d, "f1", lambda m: write_mask(m / "f1.png", bad))
    d = good(case("mask16_large_values", "unknown class id(s) 1000", commands=ALL_EVAL))
    big = np.zeros((H, W), np.uint16)
    big[0, 0] = 1000
    _replace_mask(d, "f1", lambda m: tifffile.imwrite(m / "f1.tif", big))
    d = good(case("float_mask", "not an integer type", commands=ALL_EVAL))
    _replace_mask(d, "f1", lambda m: tifffile.imwrite(m / "f1.tif", np.zeros((H, W), np.float32)))
    d = good(case("nan_float_image", "unsupported image dtype float32"))
    (d / "images" / "f1.png").unlink()
    nan = np.full((H, W, 3), np.nan, np.float32)
    tifffile.imwrite(d / "images" / "f1.tif", nan, photometric="rgb")
    d = good(case("all_ignore_masks", "no labelled pixels", commands=("train",)))
    for i in range(2):
        _replace_mask(
            d, f"f{i}", lambda m, i=i: write_mask(m / f"f{i}.png", np.full((H, W), 255, np.uint8))
        )

    # ---- broken files
    d = good(case("truncated_png", "unreadable or corrupt"))
    data = (d / "images" / "f1.png").read_bytes()
    (d / "images" / "f1.png").write_bytes(data[: len(data) // 2])
    d = good(case("truncated_tiff_image", "corrupt"))
    (d / "images" / "f1.png").unlink()
    buf = tifffile.imwrite(d / "images" / "f1.tif", np.zeros((H, W, 3), np.uint8))
    del buf
    tif = (d / "images" / "f1.tif").read_bytes()
    (d / "images" / "f1.tif").write_bytes(tif[: len(tif) // 3])
    d = good(case("zero_byte_image", "unreadable or corrupt"))
    (d / "images" / "f1.png").write_bytes(b"")
    d = good(case("zero_byte_mask", "unreadable or corrupt", commands=ALL_EVAL))
    (d / "masks" / "f1.png").write_bytes(b"")
    d = case("stack_frame_counts_differ", "shape mismatch")
    imgs = np.zeros((3, H, W, 3), np.uint8)
    write_stack(d, imgs, np.zeros((3, H, W), np.uint8))
    tifffile.imwrite(d / "masks.tif", np.zeros((2, H, W), np.uint8), photometric="minisblack")
    d = case("stack_corrupt", "corrupt TIFF")
    write_stack(d, imgs, np.zeros((3, H, W), np.uint8))
    (d / "masks.tif").write_bytes(b"II*\x00" + b"\x00" * 16)

    d = case("stack_truncated", "truncated or corrupt TIFF")
    write_stack(d, imgs, np.zeros((3, H, W), np.uint8))
    tif = (d / "masks.tif").read_bytes()
    (d / "masks.tif").write_bytes(tif[: len(tif) // 2])

    # ---- the EndoVis 2018 layout (seq_N/left_frames, seq_N/labels, labels.json)
    colours = [[0, 0, 0], [0, 255, 0], [0, 255, 255], [125, 255, 12]]
    names = ["background-tissue", "instrument-shaft", "instrument-clasper", "instrument-wrist"]
    for name, labels_json, expect in (
        ("endovis_labels_json_broken", "[{", "not valid JSON"),
        (
            "endovis_labels_json_gap",
            json.dumps(
                [
                    {"name": n, "color": c, "classid": 2 * i}
                    for i, (n, c) in enumerate(zip(names, colours))
                ]
            ),
            "without gaps",
        ),
        ("endovis_labels_json_shape", json.dumps({"names": names}), "expected a list"),
        ("endovis_no_labels_json", None, "no class colours are known"),
        ("endovis_frame_without_label", "ok", "frame has no label"),
        ("endovis_colour_not_in_map", "ok", "is not in the palette"),
    ):
        d = case(name, expect, commands=("train", "clean", "check"))
        ok = json.dumps(
            [{"name": n, "color": c, "classid": i} for i, (n, c) in enumerate(zip(names, colours))]
        )
        if labels_json is not None:
            (d / "labels.json").parent.mkdir(parents=True, exist_ok=True)
            (d / "labels.json").write_text(ok if labels_json == "ok" else labels_json)
        for i in range(2):
            write_image(
                d / "seq_1" / "left_frames" / f"frame{i:03d}.png", np.full((H, W, 3), 90, np.uint8)
            )
            label = np.zeros((H, W, 3), np.uint8)
            label[4:12, 4:20] = colours[1]
            if name == "endovis_colour_not_in_map" and i == 1:
                label[0, 0] = (1, 2, 3)
            if not (name == "endovis_frame_without_label" and i == 1):
                write_image(d / "seq_1" / "labels" / f"frame{i:03d}.png", label)

    # ---- classes.json
    for name, content, expect in (
        ("classes_bad_json", "{names: [", "not valid JSON"),
        (
            "classes_duplicate_names",
            json.dumps({"names": ["a", "a", "b", "c"]}),
            "distinct class names",
        ),
        (
            "classes_ignore_in_range",
            json.dumps({"names": ["a", "b", "c", "d"], "ignore_index": 2}),
            "ignore_index 2",
        ),
        (
            "classes_palette_length",
            json.dumps({"names": ["a", "b", "c", "d"], "palette": [[0, 0, 0]]}),
            "palette needs one",
        ),
    ):
        (good(case(name, expect)) / "classes.json").write_text(content)

    # ---- checkpoints (on a good dataset)
    ok = good(root / "_good")
    ckpt = torch.load(MODEL, weights_only=True)
    three = good(root / "_three_classes")
    (three / "classes.json").write_text(json.dumps({"names": ["bg", "shaft", "wrist"]}))
    cases.append(
        Case("ckpt_other_class_count", three, "checkpoint has 4 classes", ("clean",), model=MODEL)
    )
    data = MODEL.read_bytes()
    (root / "truncated.pt").write_bytes(data[: len(data) // 4])
    cases.append(
        Case(
            "ckpt_truncated", ok, "unreadable or truncated", ("clean",), model=root / "truncated.pt"
        )
    )
    newer = dict(ckpt, format_version=99)
    torch.save(newer, root / "newer.pt")
    cases.append(
        Case(
            "ckpt_newer_version",
            ok,
            "format version 99 is newer",
            ("clean",),
            model=root / "newer.pt",
        )
    )
    torch.save({"model": _Evil()}, root / "evil.pt")
    cases.append(Case("ckpt_malicious_pickle", ok, "refused", ("clean",), model=root / "evil.pt"))
    cases.append(Case("ckpt_missing", ok, "not found", ("clean",), model=root / "nope.pt"))

    # ---- outputs
    cases.append(
        Case(
            "output_inside_input",
            ok,
            "inside the input dataset",
            WRITERS,
            model=MODEL,
            out=ok / "cleaned",
        )
    )
    cases += output_cases(root, ok)
    cases += run_folder_cases(root, ok, ckpt)
    cases += checkpoint_cases(root, ok, three, ckpt)
    cases += config_cases(root, ok)
    cases += option_cases(root, ok)
    return cases


WRITERS = ("clean", "train", "run", "affinity")  # every command that writes next to a dataset


def output_cases(root: Path, ok: Path) -> list[Case]:
    """An output folder that overlaps the input dataset, however the path spells it."""
    (root / "_link_to_good").symlink_to(ok, target_is_directory=True)
    (root / "_elsewhere").mkdir()
    parent = good(root / "_parent" / "ds")
    return [
        Case("output_is_input", ok, "output folder is inside the input dataset", WRITERS, out=ok),
        Case(
            "output_inside_via_symlink",
            ok,
            "output folder is inside the input dataset",
            WRITERS,
            out=root / "_link_to_good" / "x",
        ),
        Case(
            "output_inside_via_dotdot",
            ok,
            "output folder is inside the input dataset",
            ("clean", "train", "run"),
            out=root / "_elsewhere" / ".." / "_good" / "x",
        ),
        Case(
            "output_contains_input",
            parent,
            "output folder contains the input dataset",
            ("clean", "train", "run"),
            out=root / "_parent",
        ),
        Case(
            "dataset_via_symlink_output_inside",
            root / "_link_to_good",
            "output folder is inside the input dataset",
            ("clean", "train", "run"),
            out=ok / "x",
        ),
    ]


def _resumable(ckpt: dict) -> dict:
    """A checkpoint with a training state (dummy values: the checks refuse before use)."""
    config = json.loads(json.dumps(ckpt["config"]))
    config["train"].update(epochs_warmup=3, epochs_jcas=5, lr=0.005)
    return dict(
        ckpt,
        config=config,
        seed=0,
        epoch=0,
        history=[],
        optimiser={},
        t_optimiser={},
        t_c_state={},
        t_a_state={},
        generator=torch.zeros(1),
        best_score={"1": -1.0, "2": -1.0},
    )


def _run_folder(folder: Path, payload: dict, name: str = "last.pt") -> Path:
    (folder / "checkpoints").mkdir(parents=True)
    torch.save(payload, folder / "checkpoints" / name)
    return folder


def run_folder_cases(root: Path, ok: Path, ckpt: dict) -> list[Case]:
    """Training into a folder that holds a trained run, and --resume that cannot work."""
    state = _resumable(ckpt)
    trained = _run_folder(root / "_trained_run", state)
    out = root / "_trained_out"
    _run_folder(out / "run", state)
    folds = root / "_trained_folds"
    _run_folder(folds / "run" / "fold1", state, "best.pt")
    exported = _run_folder(root / "_exported_run", ckpt)
    broken = json.loads(json.dumps(state["config"]))
    broken["model"]["width"] = 64
    mismatched = _run_folder(root / "_mismatched_run", dict(state, config=broken))
    same = ["--epochs-warmup", "3", "--epochs-jcas", "5"]  # the saved run's epochs
    tiny = root / "tiny_lr.yaml"
    config = json.loads(json.dumps(state["config"]))
    config["train"]["lr"] = 0.5
    tiny.write_text(json.dumps(config))  # JSON is YAML

    def c(name, expect, commands, out, *args, inputs=()):
        return Case(
            name, ok, expect, commands, out=out, extra={"args": list(args), "inputs": inputs}
        )

    return [
        c(
            "train_into_trained_run",
            "last.pt: OUT already holds a trained run",
            ("train",),
            trained,
        ),
        c("run_into_trained_run", "last.pt: OUT already holds a trained run", ("run",), out),
        c("run_into_trained_folds", "best.pt: OUT already holds a trained run", ("run",), folds),
        c(
            "resume_nothing_saved",
            "nothing to resume",
            ("train", "run"),
            root / "_no_run",
            "--resume",
        ),
        c(
            "resume_and_overwrite",
            "choose one",
            ("train", "run"),
            trained,
            "--resume",
            "--overwrite",
        ),
        c("resume_other_epochs", "--epochs-warmup 1 (saved: 3)", ("train",), trained, "--resume"),
        c("run_resume_other_epochs", "--epochs-warmup 1 (saved: 3)", ("run",), out, "--resume"),
        c(
            "resume_other_seed",
            "--seed 9 (saved: 0)",
            ("train",),
            trained,
            "--resume",
            "--seed",
            "9",
            *same,
        ),
        c(
            "resume_other_config",
            "train.lr 0.5 (saved: 0.005)",
            ("train",),
            trained,
            "--resume",
            "--config",
            str(tiny),
            *same,
            inputs=(tiny,),
        ),
        c(
            "run_resume_other_folds",
            "trained with one model",
            ("run",),
            out,
            "--resume",
            "--folds",
            "2",
            *same,
        ),
        c("resume_exported_model", "has no training state", ("train",), exported, "--resume"),
        c(
            "resume_weights_mismatch",
            "last.pt: the weights do not fit",
            ("train",),
            mismatched,
            "--resume",
        ),
    ]


def checkpoint_cases(root: Path, ok: Path, three: Path, ckpt: dict) -> list[Case]:
    """Checkpoints whose saved config is wrong, given to --model or --init."""
    config = json.loads(json.dumps(ckpt["config"]))
    config["model"]["width"] = 64
    torch.save(dict(ckpt, config=config), root / "mismatched.pt")
    config = json.loads(json.dumps(ckpt["config"]))
    config["train"]["batch_size"] = 0
    torch.save(dict(ckpt, config=config), root / "bad_config.pt")

    def init(name, expect, model, data=ok):
        return Case(
            name,
            data,
            expect,
            ("train", "run"),
            model=model,
            extra={"args": ["--init", str(model)]},
        )

    return [
        Case(
            "ckpt_weights_mismatch",
            ok,
            "mismatched.pt: the weights do not fit",
            ("clean", "affinity"),
            model=root / "mismatched.pt",
        ),
        Case(
            "ckpt_invalid_config",
            ok,
            "bad_config.pt: invalid saved config (config: "
            "train.batch_size must be a whole number >= 1, got 0)",
            ("clean",),
            model=root / "bad_config.pt",
        ),
        init(
            "init_weights_mismatch", "mismatched.pt: the weights do not fit", root / "mismatched.pt"
        ),
        init("init_missing", "nope_init.pt: checkpoint file not found", root / "nope_init.pt"),
        init("init_other_class_count", "checkpoint has 4 classes", MODEL, three),
    ]


CONFIGS = {  # name: (YAML text, the error's text after "<file>: ")
    "config_batch_size_zero": (
        "train: {batch_size: 0}",
        "train.batch_size must be a whole number >= 1, got 0",
    ),
    "config_lr_text": ("train: {lr: abc}", "train.lr must be a number > 0, got 'abc'"),
    "config_lr_negative": ("train: {lr: -0.01}", "train.lr must be a number > 0, got -0.01"),
    "config_epochs_negative": (
        "train: {epochs_jcas: -2}",
        "train.epochs_jcas must be a whole number >= 0, got -2",
    ),
    "config_grid_one_number": (
        "affinity: {grid: [16]}",
        "affinity.grid must be a list of 2 positive whole numbers",
    ),
    "config_unknown_optimizer": (
        "train: {optimizer: rmsprop}",
        "train.optimizer must be one of sgd, adam, got 'rmsprop'",
    ),
    "config_unknown_key": ("train: {lr_typo: 0.1}", "unknown key(s) ['lr_typo'] in 'train'"),
    "config_not_a_mapping": ("- 1\n- 2", "a config must be a mapping of sections"),
    "config_bad_yaml": ("train: {lr: [", "cannot read config"),
}


def config_cases(root: Path, ok: Path) -> list[Case]:
    """--config files with a wrong value: one line that names the file and the key."""
    folder = root / "_configs"
    folder.mkdir()
    cases = []
    for name, (text, expect) in CONFIGS.items():
        path = folder / f"{name}.yaml"
        path.write_text(text)
        cases.append(
            Case(
                name,
                ok,
                f"{path.name}: {expect}",
                ("train", "run"),
                extra={"args": ["--config", str(path)], "inputs": (path,)},
            )
        )
    missing = folder / "missing.yaml"
    cases.append(
        Case(
            "config_missing_file",
            ok,
            "missing.yaml: cannot read config",
            ("train", "run"),
            extra={"args": ["--config", str(missing)]},
        )
    )
    return cases


def option_cases(root: Path, ok: Path) -> list[Case]:
    """Options that used to end in a traceback, and outputs that would replace an input."""
    model = root / "export_me.pt"
    shutil.copyfile(MODEL, model)
    (root / "_sub").mkdir()
    huge = ["--size", "100000x100000"]
    return [
        Case(
            "flags_nothing_to_train",
            ok,
            "nothing to train",
            ("train", "run"),
            extra={"args": ["--epochs-warmup", "0", "--epochs-jcas", "0"]},
        ),
        Case(
            "device_unknown",
            ok,
            "unknown device 'gpu0'",
            ("train", "run", "clean"),
            extra={"args": ["--device", "gpu0"]},
        ),
        Case(
            "make_dataset_size_huge",
            root / "_huge",
            "at most 8192 pixels per side",
            ("make-dataset",),
            extra={"args": huge},
        ),
        Case(
            "make_dataset_size_too_small",
            root / "_small",
            "at least 32x32",
            ("make-dataset",),
            extra={"args": ["--size", "16x16"]},
        ),
        Case(
            "make_dataset_size_garbage",
            root / "_garbage",
            "must look like 256x320",
            ("make-dataset",),
            extra={"args": ["--size", "big"]},
        ),
        Case(
            "export_onto_itself",
            model,
            "export_me.pt: is the input checkpoint itself",
            ("export",),
            model=model,
            out=model,
        ),
        Case(
            "export_onto_itself_via_dotdot",
            model,
            "is the input checkpoint itself",
            ("export",),
            model=model,
            out=root / "_sub" / ".." / "export_me.pt",
        ),
        Case(
            "export_missing_checkpoint",
            ok,
            "nope_export.pt: checkpoint file not found",
            ("export",),
            model=root / "nope_export.pt",
            out=root / "_exported.pt",
        ),
    ]


EVIL_MARK = Path("/tmp/jcas_corpus_evil_ran")


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, (f"touch {EVIL_MARK}",))


if __name__ == "__main__":
    for c in build(Path(sys.argv[1] if len(sys.argv) > 1 else "corpus_out")):
        print(f"{c.name}: {c.expect}")
