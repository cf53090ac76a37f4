"""Symlinked sequence folders are read, loops are not followed, and skips are reported."""

from __future__ import annotations

from typer.testing import CliRunner

from jcas_napari.cli import app
from jcas_napari.data.io import open_dataset
from jcas_napari.data.make import make_dataset


def linked_dataset(tmp_path):
    """seq_01 real; seq_02 (in every folder) a link to a copy kept outside the dataset."""
    make_dataset(tmp_path / "src", sequences=2, frames=4, size=(32, 40), noise="ellipse", seed=5)
    ds = tmp_path / "ds"
    for sub in ("images", "masks", "masks_clean"):
        (ds / sub).mkdir(parents=True)
        (tmp_path / "src" / sub / "seq_01").rename(ds / sub / "seq_01")
        target = tmp_path / "src" / sub / "seq_02"
        (ds / sub / "seq_02").symlink_to(target, target_is_directory=True)
    (ds / "classes.json").write_bytes((tmp_path / "src" / "classes.json").read_bytes())
    return ds


def test_symlinked_sequences_are_read(tmp_path):
    ds = open_dataset(linked_dataset(tmp_path))
    assert len(ds) == 8 and sorted(ds.sequences()) == ["seq_01", "seq_02"]
    assert ds.skipped == []


def test_a_symlink_loop_is_not_followed_and_is_reported(tmp_path):
    root = linked_dataset(tmp_path)
    for sub in ("images", "masks"):  # a link back to its own parent: a loop
        (root / sub / "seq_01" / "again").symlink_to(root / sub, target_is_directory=True)
    ds = open_dataset(root)
    assert len(ds) == 8
    assert any("again: skipped (links to" in line for line in ds.skipped)
    res = CliRunner().invoke(app, ["check", str(root)])
    assert res.exit_code == 0, res.output
    assert "8 frames in 2 sequence(s)" in res.output and "again: skipped" in res.output


def test_check_lists_files_it_does_not_read(tmp_path):
    """Found by a new-user walkthrough: notes.txt or .DS_Store among the frames were
    skipped without a word, while the README says `jcas check` lists what it skipped."""
    make_dataset(tmp_path / "ds", sequences=1, frames=2, size=(32, 40), seed=3)
    (tmp_path / "ds" / "images" / "seq_01" / "notes.txt").write_text("to do")
    (tmp_path / "ds" / "masks" / "seq_01" / ".DS_Store").write_bytes(b"\0")
    ds = open_dataset(tmp_path / "ds")
    assert len(ds) == 2
    res = CliRunner().invoke(app, ["check", str(tmp_path / "ds")])
    assert res.exit_code == 0, res.output
    assert "notes.txt: skipped (not an image file)" in res.output
    assert ".DS_Store: skipped (hidden file)" in res.output
