"""The `jcas` command line for datasets: make-dataset and check."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from jcas_napari.cli import app
from jcas_napari.data.io import open_dataset

runner = CliRunner()


def test_help_lists_commands():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0 and "make-dataset" in res.output and "check" in res.output
    res = runner.invoke(app, ["make-dataset", "--help"])
    assert res.exit_code == 0 and "--noise" in res.output and "--seed" in res.output


@pytest.mark.parametrize(
    ("command", "flag"),
    [("clean", "--model"), ("run", "--folds"), ("train", "--init"), ("evaluate", "--classes")],
)
def test_help_is_plain_text_at_80_columns(command, flag):
    """Plain help: a flag is not labelled <bool>, no line is wider than the terminal, and
    no help text is cut short by a box."""
    res = runner.invoke(app, [command, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert res.exit_code == 0
    assert "<bool>" not in res.output and "╭" not in res.output
    assert max(len(line) for line in res.output.splitlines()) <= 80
    assert flag in res.output


def test_make_dataset_writes_layout_and_reads_back(tmp_path):
    out = tmp_path / "gen"
    res = runner.invoke(
        app,
        [
            "make-dataset",
            str(out),
            "--sequences",
            "2",
            "--frames",
            "3",
            "--size",
            "64x80",
            "--noise",
            "ellipse",
            "--seed",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    ds = open_dataset(out)
    ds.validate()
    assert len(ds) == 6 and ds.has_clean and list(ds.sequences()) == ["seq_01", "seq_02"]
    record = json.loads((out / "noise.json").read_text())
    assert record["preset"] == "ellipse" and len(record["frames"]) == 6
    s = ds[0]
    dis = record["frames"][s.id]["disagreement"]
    assert dis == pytest.approx((s.mask != s.clean).mean(), abs=1e-9)
    assert any(f["disagreement"] > 0 for f in record["frames"].values())


def test_make_dataset_is_reproducible(tmp_path):
    args = ["--sequences", "1", "--frames", "2", "--size", "64x80", "--noise", "mix"]
    for name in ("a", "b"):
        assert runner.invoke(app, ["make-dataset", str(tmp_path / name), *args]).exit_code == 0
    a, b = open_dataset(tmp_path / "a"), open_dataset(tmp_path / "b")
    for sa, sb in zip(a, b):
        np.testing.assert_array_equal(sa.mask, sb.mask)
        np.testing.assert_array_equal(sa.image, sb.image)


def test_make_dataset_refuses_non_empty_out(tmp_path):
    user = tmp_path / "user"
    (user / "masks").mkdir(parents=True)
    (user / "masks" / "precious.png").write_bytes(b"mine")
    res = runner.invoke(app, ["make-dataset", str(user), "--frames", "1", "--sequences", "1"])
    assert res.exit_code == 2 and "not empty" in res.output
    res = runner.invoke(
        app, ["make-dataset", str(user), "--frames", "1", "--sequences", "1", "--overwrite"]
    )
    assert res.exit_code == 2 and "not a generated dataset" in res.output
    assert (user / "masks" / "precious.png").read_bytes() == b"mine"
    assert "Traceback" not in res.output


def test_make_dataset_overwrite_replaces_generated(tmp_path):
    out = tmp_path / "gen"
    base = ["make-dataset", str(out), "--sequences", "1", "--size", "64x80"]
    assert runner.invoke(app, [*base, "--frames", "3"]).exit_code == 0
    assert runner.invoke(app, [*base, "--frames", "2", "--overwrite"]).exit_code == 0
    assert len(open_dataset(out)) == 2


def test_bad_options_are_clear(tmp_path):
    res = runner.invoke(app, ["make-dataset", str(tmp_path / "x"), "--noise", "nope"])
    assert res.exit_code == 2 and "unknown noise preset 'nope'" in res.output
    res = runner.invoke(app, ["make-dataset", str(tmp_path / "y"), "--size", "big"])
    assert res.exit_code == 2 and "256x320" in res.output


def test_check_reports_problem_in_one_line(tmp_path):
    out = tmp_path / "gen"
    runner.invoke(
        app, ["make-dataset", str(out), "--sequences", "1", "--frames", "2", "--size", "64x80"]
    )
    res = runner.invoke(app, ["check", str(out)])
    assert res.exit_code == 0 and "OK, 2 frames" in res.output
    (out / "masks" / "seq_01" / "frame001.png").unlink()
    res = runner.invoke(app, ["check", str(out)])
    assert res.exit_code == 2
    assert "frame001.png: image has no mask" in res.output and "Traceback" not in res.output
