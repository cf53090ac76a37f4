"""Messages that must not mislead: a full disk names the file, non-UTF-8 file names clean
through to scores.csv and the report (and again on a rerun), a truncated TIFF is one line,
and `check` says what it converted."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent / "corpus"))

from make_corpus import MODEL, good  # noqa: E402

from jcas_napari.cli import app  # noqa: E402
from jcas_napari.data.io import write_stack  # noqa: E402

runner = CliRunner()


def test_disk_full_names_the_file(tmp_path, monkeypatch):
    import jcas_napari.data.fsutil as fsutil

    def full(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    ds = good(tmp_path / "ds")
    monkeypatch.setattr(fsutil.os, "fsync", full)
    res = runner.invoke(
        app, ["clean", str(ds), "--model", str(MODEL), "--out", str(tmp_path / "out")]
    )
    assert res.exit_code == 2, res.output
    line = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(line) == 1 and "No space left on device" in line[0]
    assert str(tmp_path / "out") in line[0] and line[0].split(":")[1].strip().endswith(".png")
    assert "Traceback" not in res.output
    assert not list((tmp_path / "out").rglob(".*.tmp"))  # no temporary file left behind


def test_non_utf8_file_names_clean_to_the_end(tmp_path):
    ds = good(tmp_path / "ds")
    raw = os.fsdecode(b"f\xff\xfe")  # not UTF-8: Python holds it with surrogate escapes
    for folder in ("images", "masks"):
        os.rename(ds / folder / "f1.png", ds / folder / f"{raw}.png")
    out = tmp_path / "out"
    for attempt in ("first", "rerun"):
        # A rerun into the same folder resumes: the finished frames are read back.
        res = runner.invoke(app, ["clean", str(ds), "--model", str(MODEL), "--out", str(out)])
        assert res.exit_code == 0, (attempt, res.output)
        assert os.fsencode(out / "masks" / f"{raw}.png") in [
            os.fsencode(p) for p in (out / "masks").iterdir()
        ]
        csv_bytes = (out / "scores.csv").read_bytes()
        assert b"f\xff\xfe" in csv_bytes and (out / "report.md").is_file()


def test_truncated_tiff_is_one_line(tmp_path):
    rng = np.random.default_rng(0)
    write_stack(
        tmp_path / "st",
        rng.integers(0, 255, (3, 16, 20, 3), dtype=np.uint8),
        np.zeros((3, 16, 20), np.uint8),
    )
    data = (tmp_path / "st" / "masks.tif").read_bytes()
    (tmp_path / "st" / "masks.tif").write_bytes(data[: len(data) // 2])
    res = runner.invoke(app, ["check", str(tmp_path / "st")])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert lines == [
        f"error: {tmp_path / 'st' / 'masks.tif'}: truncated or corrupt TIFF "
        "(invalid page offset " + lines[0].rsplit("offset ", 1)[1]
    ]


def test_check_reports_each_conversion(tmp_path):
    ds = good(tmp_path / "ds", frames=4)
    im = Image.fromarray(np.full((32, 40, 3), 90, np.uint8)).convert("P")
    im.save(ds / "images" / "f0.png")
    Image.fromarray(np.full((32, 40, 3), 90, np.uint8)).convert("CMYK").save(
        ds / "images" / "f1.jpg"
    )
    (ds / "images" / "f1.png").unlink()
    (ds / "images" / "f2.png").unlink()
    tifffile.imwrite(ds / "images" / "f2.tif", np.full((32, 40, 3), 3000, np.uint16))
    res = runner.invoke(app, ["check", str(ds)])
    assert res.exit_code == 0, res.output
    assert f"converted: palette (P) frame converted to RGB: {ds / 'images' / 'f0.png'}" in (
        res.output
    )
    assert f"converted: CMYK frame converted to RGB: {ds / 'images' / 'f1.jpg'}" in res.output
    assert f"converted: 12-bit data scaled to 8 bits: {ds / 'images' / 'f2.tif'}" in res.output
    assert "f3" not in res.output  # an ordinary RGB frame needs no note


def test_tifffile_warnings_are_caught_only_inside_our_reads(tmp_path, caplog):
    import logging
    import threading

    import pytest

    from jcas_napari.data.decode import reading
    from jcas_napari.data.schema import DatasetError

    log = logging.getLogger("tifffile")
    with caplog.at_level(logging.WARNING, logger="tifffile"):
        log.warning("outside any read")  # the user's logging still sees it
        # A warning from another thread is not this file's problem: no error here.
        with reading(tmp_path / "a.tif", "TIFF"):
            other = threading.Thread(target=log.warning, args=("another thread",))
            other.start()
            other.join()
    assert [r.getMessage() for r in caplog.records] == ["outside any read", "another thread"]
    want = f"{tmp_path / 'b.tif'}: truncated or corrupt TIFF (invalid page offset 99)"
    with pytest.raises(DatasetError) as err, reading(tmp_path / "b.tif", "TIFF"):
        log.warning("<tifffile.TiffPages @8> invalid page offset 99")
    assert str(err.value) == want
