"""Review safety: results and saved decisions stay bound to the data they came from.

Regression tests for four issues: stale cleaning results reused over other layers, resume
replaying decisions onto another model's regions, Shift+A overwriting an explicit reject,
and the trainer defaulting to the ground-truth masks. The GUI tests replace the model with a
fake ``clean`` (two square regions per frame), so they run in seconds.
"""

from __future__ import annotations

import numpy as np
import pytest

from jcas_napari.core.clean import CleaningResult, Region
from jcas_napari.napari.review import ReviewState

SIZE = (24, 32)
BOXES = ((2, 2, 6, 6), (10, 12, 14, 16))  # y0, x0, y1, x1 of the two regions of a frame


def fake_result(index: int, mask: np.ndarray, shift: int = 0) -> CleaningResult:
    """A frame's cleaning: each box proposed as class 1 + shift (box 1) / 2 + shift (box 2).

    ``shift`` stands for another model: the same region ids, other proposed classes.
    """
    proposed, regions, info = mask.copy(), np.zeros(mask.shape, np.int32), []
    for label, (y0, x0, y1, x1) in enumerate(BOXES, start=1):
        to = (label + shift) % 4 or 1
        proposed[y0:y1, x0:x1], regions[y0:y1, x0:x1] = to, label
        info.append(
            Region(
                label=label,
                area=(y1 - y0) * (x1 - x0),
                score=0.9 - 0.1 * label,
                from_class=0,
                to_class=to,
                bbox=(y0, x0, y1, x1),
            )
        )
    return CleaningResult(
        index=index,
        id=f"f{index}",
        prediction=proposed,
        confidence=np.ones(mask.shape, np.float32),
        proposed=proposed,
        regions=regions,
        region_info=info,
        noise_score=index / 100,
        changed_fraction=float((proposed != mask).mean()),
    )


def fake_results(masks: np.ndarray, shift: int = 0) -> list[CleaningResult]:
    return [fake_result(i, m, shift) for i, m in enumerate(masks)]


# ---------------------------------------------------------------------- Qt-free logic


def test_shift_a_accepts_only_undecided_regions():
    masks = np.zeros((3, *SIZE), np.uint8)
    state = ReviewState.from_results(masks, fake_results(masks))
    first = state.current
    state.reject()  # an explicit reject on the first region
    state.accept_frame()  # Shift+A on its frame
    assert state.decisions[first.key] == "reject"
    others = [r for r in state.order if r.frame == first.frame and r.key != first.key]
    assert others and all(state.decisions[r.key] == "accept" for r in others)
    sel = state.regions[first.frame] == first.label
    np.testing.assert_array_equal(state.reviewed[first.frame][sel], masks[first.frame][sel])
    state.undo()  # undoes the Shift+A only: the reject stays
    assert state.decisions == {first.key: "reject"}
    state.accept()  # a plain A still overrides a decision, as before
    assert state.decisions[first.key] == "accept"


def test_resume_refuses_decisions_made_on_other_proposals(tmp_path):
    masks = np.zeros((3, *SIZE), np.uint8)
    state = ReviewState.from_results(masks, fake_results(masks), data_id="images-a")
    state.accept()
    state.next()
    state.accept()
    path = state.save(tmp_path / "review_state.json")
    # The same data and proposals: the decisions come back.
    same = ReviewState.from_results(masks, fake_results(masks), data_id="images-a")
    assert same.load(path) == 2 and same.decisions == state.decisions
    np.testing.assert_array_equal(same.reviewed, state.reviewed)
    # Another model's proposals over the same region ids: refused, nothing applied.
    other = ReviewState.from_results(masks, fake_results(masks, shift=1), data_id="images-a")
    with pytest.raises(ValueError, match="proposals"):
        other.load(path)
    assert other.decisions == {}
    np.testing.assert_array_equal(other.reviewed, masks)
    # Other masks, or other frames under the same masks: refused too.
    edited = masks.copy()
    edited[0, 20, 30] = 3
    with pytest.raises(ValueError, match="masks"):
        ReviewState.from_results(edited, fake_results(masks), data_id="images-a").load(path)
    with pytest.raises(ValueError, match="frames"):
        ReviewState.from_results(masks, fake_results(masks), data_id="images-b").load(path)


def test_resume_refuses_a_state_file_that_does_not_say_what_it_belongs_to(tmp_path):
    import json

    masks = np.zeros((2, *SIZE), np.uint8)
    path = tmp_path / "review_state.json"
    path.write_text(json.dumps({"version": 1, "position": 0, "decisions": {"0:1": "accept"}}))
    state = ReviewState.from_results(masks, fake_results(masks))
    with pytest.raises(ValueError, match="belongs to"):
        state.load(path)
    assert state.decisions == {}


def test_fingerprint_sees_content_shape_and_dtype():
    from jcas_napari.data.fingerprint import fingerprint

    a = np.zeros((4, 8, 8), np.uint8)
    b = a.copy()
    assert fingerprint(a) == fingerprint(b)
    b[3, 7, 7] = 1
    assert fingerprint(a) != fingerprint(b)
    assert fingerprint(a) != fingerprint(a.reshape(8, 4, 8))
    assert fingerprint(a) != fingerprint(a.astype(np.int32))
    big = np.zeros((3, 64, 64), np.uint8)  # over the limit: a sample of it is hashed
    assert fingerprint(big, limit=1000) == fingerprint(big.copy(), limit=1000)
    assert fingerprint(big, limit=1000) != fingerprint(big[:2], limit=1000)


# ---------------------------------------------------------------------- the widgets


@pytest.fixture
def viewer(make_napari_viewer):
    pytest.importorskip("napari")
    return make_napari_viewer()


def add_data(viewer, frames: int, seed: int = 0, root: str | None = None) -> None:
    """A small dataset as the reader gives it: frames and all-background masks."""
    rng = np.random.default_rng(seed)
    meta = {"dataset_root": root} if root else {}
    viewer.add_image(
        rng.integers(0, 255, (frames, *SIZE, 3), dtype=np.uint8),
        name="frames",
        rgb=True,
        metadata=meta,
    )
    viewer.add_labels(np.zeros((frames, *SIZE), np.uint8), name="masks", metadata=meta)


def clean_with_fake_model(trainer, qtbot, monkeypatch, shift: int = 0) -> None:
    """Run the trainer's Clean (worker and slots as in use) with a fake model."""
    import jcas_napari.core.pipeline as pipeline

    def fake_clean(ds, *_args, **_kwargs):
        for i in range(len(ds)):
            yield fake_result(i, ds[i].mask, shift)

    monkeypatch.setattr(pipeline, "clean_models", fake_clean)
    monkeypatch.setattr(trainer.session, "get_cleaner", lambda: None)
    trainer.clean()
    layers = trainer.viewer.layers
    qtbot.waitUntil(
        lambda: (
            trainer.start_btn.isEnabled() and not trainer._pending_layers and "confidence" in layers
        ),
        timeout=30_000,
    )
    # The layers' events settle (the review takes the layers as they are now).
    qtbot.wait(50)


def notes(monkeypatch) -> list[str]:
    import napari.utils.notifications as nt

    seen: list[str] = []
    for name in ("show_info", "show_warning", "show_error"):
        monkeypatch.setattr(nt, name, seen.append)
    return seen


@pytest.mark.gui
@pytest.mark.parametrize(("before", "after"), [(8, 12), (12, 8)])
def test_review_refuses_results_of_layers_that_were_replaced(
    viewer, qtbot, monkeypatch, tmp_path, before, after
):
    """The issue's steps: clean, clear the layers, open other data, Start review."""
    from jcas_napari.napari.review_widget import ReviewWidget
    from jcas_napari.napari.trainer import TrainerWidget

    add_data(viewer, before, root=str(tmp_path / "a"))  # the autosave goes to tmp_path
    trainer = TrainerWidget(viewer)
    clean_with_fake_model(trainer, qtbot, monkeypatch)
    viewer.layers.clear()
    add_data(viewer, after, seed=1, root=str(tmp_path / "b"))  # same names, other data
    review = ReviewWidget(viewer)
    review.out_edit.setText(str(tmp_path / "out"))
    seen = notes(monkeypatch)
    review.start()
    assert review.state is None and "reviewed" not in viewer.layers
    assert "clean" in review.counter.text().lower(), review.counter.text()
    review.do("accept")  # A does nothing (it pasted another image's proposal)
    assert "reviewed" not in viewer.layers and not (tmp_path / "out").exists()
    assert not [s for s in seen if "out of bounds" in s]


@pytest.mark.gui
def test_review_refuses_results_when_the_masks_changed(viewer, qtbot, monkeypatch, tmp_path):
    from jcas_napari.napari.review_widget import ReviewWidget
    from jcas_napari.napari.trainer import TrainerWidget

    add_data(viewer, 4)
    trainer = TrainerWidget(viewer)
    clean_with_fake_model(trainer, qtbot, monkeypatch)
    review = ReviewWidget(viewer)
    review.out_edit.setText(str(tmp_path / "out"))  # the autosave stays out of $HOME
    viewer.layers["masks"].data[1, 20, 30] = 2  # painted in place (no data event)
    review.start()
    assert review.state is None
    assert "changed" in review.counter.text(), review.counter.text()
    # Cleaning again binds new results to the data as it is now: the review starts.
    clean_with_fake_model(trainer, qtbot, monkeypatch)
    review.start()
    assert review.state is not None and review.state.order
    # The counter names the change the user decides on (the fake's first region: 0 -> 1).
    assert "background → shaft" in review.counter.text(), review.counter.text()
    review.do("accept")
    assert review.state.counts()["accepted"] == 1


@pytest.mark.gui
def test_a_running_review_stops_when_its_layers_go_away(viewer, qtbot, monkeypatch, tmp_path):
    from jcas_napari.napari.review_widget import STATE_FILE, ReviewWidget
    from jcas_napari.napari.trainer import TrainerWidget

    add_data(viewer, 4, root=str(tmp_path / "a"))
    trainer = TrainerWidget(viewer)
    clean_with_fake_model(trainer, qtbot, monkeypatch)
    review = ReviewWidget(viewer)
    review.start()
    assert review.state is not None
    out = review.output_dir()
    assert out == tmp_path / "a_reviewed"
    viewer.layers.clear()
    add_data(viewer, 4, seed=1, root=str(tmp_path / "b"))
    review.do("accept")  # no decision on the old regions, and no state file for them
    review.do("accept")
    assert review.state is None and "clean" in review.counter.text().lower()
    assert not (out / STATE_FILE).exists()
    assert not (tmp_path / "b_reviewed" / STATE_FILE).exists()
    assert review.save() == []


@pytest.mark.gui
def test_resume_is_refused_after_cleaning_with_another_model(viewer, qtbot, monkeypatch, tmp_path):
    from jcas_napari.napari.review_widget import STATE_FILE, ReviewWidget
    from jcas_napari.napari.trainer import TrainerWidget

    add_data(viewer, 3)
    trainer = TrainerWidget(viewer)
    clean_with_fake_model(trainer, qtbot, monkeypatch)
    review = ReviewWidget(viewer)
    review.out_edit.setText(str(tmp_path / "out"))
    review.start()
    review.do("accept")
    review.do("accept")
    saved = (tmp_path / "out" / STATE_FILE).read_bytes()
    # The same results again: the two decisions resume.
    seen = notes(monkeypatch)
    again = ReviewWidget(viewer)
    again.out_edit.setText(str(tmp_path / "out"))
    again.start()
    assert again.state.counts()["accepted"] == 2 and any("resumed 2" in s for s in seen)
    # Another model: the same region ids, other proposals. Nothing is replayed.
    clean_with_fake_model(trainer, qtbot, monkeypatch, shift=1)
    seen.clear()
    third = ReviewWidget(viewer)
    third.out_edit.setText(str(tmp_path / "out"))
    third.start()
    assert third.state is not None and third.state.decisions == {}
    np.testing.assert_array_equal(viewer.layers["reviewed"].data, viewer.layers["masks"].data)
    assert not any(s.startswith("jcas-napari: resumed") for s in seen), seen
    assert any("not resumed" in s for s in seen), seen
    # The old decisions are kept aside, not overwritten by the next autosave.
    third.do("accept")
    kept = [p for p in (tmp_path / "out").iterdir() if p.name != STATE_FILE]
    assert [p.read_bytes() for p in kept] == [saved], kept


@pytest.mark.gui
def test_trainer_never_defaults_to_the_truth_masks(viewer, qtbot):
    from jcas_napari.napari.trainer import TrainerWidget

    trainer = TrainerWidget(viewer)  # open before the sample: the order
    viewer.open_sample("jcas-napari", "noisy-sequence")
    assert trainer.mask_combo.currentText() == "masks (noisy)"
    viewer.layers.clear()
    labels = np.zeros((2, *SIZE), np.uint8)
    viewer.add_labels(labels, name="gt")
    viewer.add_labels(labels, name="annotator B", metadata={"ground_truth": True})
    assert trainer.mask_combo.currentText() == ""  # only truth: no default at all
    viewer.add_labels(labels, name="labels")
    assert trainer.mask_combo.currentText() == "labels"
    # The user may still pick a truth layer on purpose; that choice is kept.
    index = trainer.mask_combo.findText("gt")
    trainer.mask_combo.setCurrentIndex(index)
    trainer.mask_combo.activated.emit(index)
    viewer.add_labels(labels, name="more labels")
    assert trainer.mask_combo.currentText() == "gt"


def test_reader_marks_the_clean_masks_as_truth(folder_dataset):
    from jcas_napari.napari.reader import get_reader

    pytest.importorskip("napari")
    layers = get_reader(str(folder_dataset))(None)
    assert [lay[1]["name"] for lay in layers] == ["frames", "masks_clean", "masks"]
    assert layers[1][1]["metadata"]["ground_truth"] is True
    assert "class_names" in layers[1][1]["metadata"]
    assert not layers[2][1]["metadata"].get("ground_truth")


@pytest.mark.parametrize("where", ["inside", "containing"])
def test_review_save_uses_the_cli_output_rule(viewer, qtbot, monkeypatch, tmp_path, where):
    """Saving reviewed masks into (or around) the dataset is refused, as by the CLI."""
    from jcas_napari.napari.review_widget import ReviewWidget
    from jcas_napari.napari.trainer import TrainerWidget

    root = tmp_path / "data" / "ds"
    root.mkdir(parents=True)
    add_data(viewer, 4, root=str(root))
    trainer = TrainerWidget(viewer)
    clean_with_fake_model(trainer, qtbot, monkeypatch)
    review = ReviewWidget(viewer)
    out = root / "reviewed" if where == "inside" else tmp_path / "data"
    review.out_edit.setText(str(out))
    seen = notes(monkeypatch)
    review.start()
    review.do("accept")
    assert review.save() == []
    said = "output folder is inside" if where == "inside" else "output folder contains"
    assert any(said in s for s in seen), seen
    assert not (out / "masks").exists()
