"""The package works outside the repository: a non-editable wheel carries the shipped
configs and model, and the CLI and the napari sample run from a folder outside the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict]:
    """The wheel built from this checkout, installed (without -e) into its own folder."""
    base = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools writes build/ and *.egg-info next to the sources.
    skip = shutil.ignore_patterns(
        ".git",
        ".venv",
        "build",
        "dist",
        "*.egg-info",
        "demo_out",
        "__pycache__",
        ".*_cache",
        ".hypothesis",
    )
    src = Path(shutil.copytree(ROOT, base / "src", symlinks=True, ignore=skip))
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", str(src), "-w", str(base / "dist")],
        check=True,
        cwd=base,
    )
    wheel = next((base / "dist").glob("jcas_napari-*.whl"))
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(base / "site"), str(wheel)],
        check=True,
        cwd=base,
    )
    # The installed copy comes first; the other dependencies come from this environment.
    env = {**os.environ, "PYTHONPATH": str(base / "site"), "OMP_NUM_THREADS": "1"}
    return base, env


def run(base: Path, env: dict, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, *args], cwd=base, env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_the_wheel_finds_its_models_outside_the_checkout(installed):
    base, env = installed
    code = (
        "import jcas_napari, jcas_napari.assets as a, jcas_napari.core.config as c;"
        "print(jcas_napari.__file__); print(a.shipped_model()); print(c.available_configs())"
    )
    where, model, configs = run(base, env, "-c", code).splitlines()
    assert Path(where).is_relative_to(base / "site") and ROOT not in Path(where).parents
    assert Path(model).is_file() and Path(model).is_relative_to(base / "site")
    assert "small" in configs and "deeplab-r101" in configs


def test_cli_train_and_clean_from_the_wheel(installed):
    base, env = installed
    cli = ["-m", "jcas_napari.cli"]
    run(
        base,
        env,
        *cli,
        "make-dataset",
        "ds",
        "--sequences",
        "2",
        "--frames",
        "2",
        "--size",
        "64x80",
        "--noise",
        "ellipse",
        "--seed",
        "3",
    )
    run(
        base,
        env,
        *cli,
        "train",
        "ds",
        "--out",
        "run",
        "--config",
        "small",
        "--init",
        "none",
        "--epochs-warmup",
        "1",
        "--epochs-jcas",
        "0",
        "--device",
        "cpu",
    )
    assert (base / "run" / "checkpoints" / "best.pt").is_file()
    model = run(base, env, "-c", "import jcas_napari.assets as a; print(a.shipped_model())")
    run(base, env, *cli, "clean", "ds", "--model", model.strip(), "--out", "out", "--device", "cpu")
    assert len(list((base / "out" / "masks").rglob("*.png"))) == 4


def test_napari_sample_from_the_wheel(installed):
    base, env = installed
    code = (
        "from jcas_napari.napari.sample import noisy_sequence; "
        "layers = noisy_sequence(); print(len(layers), layers[0][0].shape)"
    )
    n, shape = run(base, env, "-c", code).split(" ", 1)
    assert int(n) >= 2 and "256, 320" in shape
    # The pre-generated sample ships in the wheel (else opening the sample generates it).
    code = "from jcas_napari.napari.sample import SHIPPED_FILE as f; print(f.is_file(), f)"
    shipped, where = run(base, env, "-c", code).split(" ", 1)
    repo = Path(__file__).resolve().parents[1]
    assert shipped == "True" and not Path(where.strip()).resolve().is_relative_to(repo)
