"""The review side of the GUI (issue 11): buttons and tooltips, one undo history for
decisions and strokes, review keys on any layer, the region shown by its pixels, the
matrices of the model in use, the inspector off the GUI thread, defaults and layout.

Results come from a fake cleaning (two square regions per frame, ``test_review_safety``)
put into the session as the trainer does, so these tests do not train or run a model.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from test_review_safety import SIZE, fake_results, notes

pytest.importorskip("napari")
pytestmark = pytest.mark.gui
IDS = [f"seq_0{1 + i // 2}/frame00{i % 2}" for i in range(4)]


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def cleaned(viewer, tmp_path, frames: int = 4):
    """Frames and masks as the reader gives them (dataset_root, frame ids), then the
    session's results and result layers as the trainer leaves them after cleaning."""
    from jcas_napari.data.io import ClassInfo
    from jcas_napari.napari.layers import labels_kwargs, result_layers
    from jcas_napari.napari.provenance import ResultsSource
    from jcas_napari.napari.session import session_for

    root = tmp_path / "data" / "ds"
    root.mkdir(parents=True, exist_ok=True)
    meta = {"dataset_root": str(root), "frame_ids": IDS[:frames]}
    rng = np.random.default_rng(0)
    image = viewer.add_image(
        rng.integers(0, 255, (frames, *SIZE, 3), dtype=np.uint8),
        name="frames",
        rgb=True,
        metadata=meta,
    )
    masks = viewer.add_labels(
        np.zeros((frames, *SIZE), np.uint8), **labels_kwargs("masks", ClassInfo(), metadata=meta)
    )
    results = fake_results(masks.data)
    session = session_for(viewer)
    session.set_results(results, ResultsSource.of(image, masks))
    for name, (data, kwargs) in result_layers(results, ClassInfo()).items():
        (viewer.add_image if name == "confidence" else viewer.add_labels)(data, **kwargs)
    session.cleaned.emit(results)
    return root


def review_of(viewer, tmp_path):
    from jcas_napari.napari.review_widget import ReviewWidget

    root = cleaned(viewer, tmp_path)
    review = ReviewWidget(viewer)
    review.start()
    assert review.state is not None and review.state.order
    return review, root


def press(viewer, key: str) -> None:
    """A key press as napari dispatches it: the active layer's keymaps, then the viewer's."""
    from napari.utils.key_bindings import KeymapHandler

    handler = KeymapHandler()
    active = viewer.layers.selection.active
    handler.keymap_providers = [viewer] if active is None else [active, viewer]
    handler.press_key(key)


def region_sel(state, ref):
    return state.regions[ref.frame] == ref.label


# ---------------------------------------------------------------- 1. buttons, tooltips


def test_accept_frame_button_accepts_only_undecided_regions(viewer, tmp_path):
    review, _ = review_of(viewer, tmp_path)
    state = review.state
    first = state.current
    review.buttons["reject"].click()
    state.position = state.order.index(first)
    review.buttons["accept_frame"].click()
    in_frame = [r for r in state.order if r.frame == first.frame]
    assert state.decisions[first.key] == "reject"
    assert all(state.decisions[r.key] == "accept" for r in in_frame if r.key != first.key)


def test_every_control_of_review_matrices_and_inspector_has_a_tooltip(viewer, tmp_path):
    from qtpy.QtWidgets import QAbstractButton, QComboBox, QLineEdit

    from jcas_napari.napari.inspector import InspectorWidget
    from jcas_napari.napari.matrices import MatricesWidget

    review, _ = review_of(viewer, tmp_path)
    for widget in (review, MatricesWidget(viewer), InspectorWidget(viewer)):
        controls = [
            w for kind in (QAbstractButton, QComboBox, QLineEdit) for w in widget.findChildren(kind)
        ]
        controls = [w for w in controls if not w.objectName().startswith("qt_")]
        assert controls or isinstance(widget, InspectorWidget)
        missing = [
            w.text() if hasattr(w, "text") else type(w).__name__
            for w in controls
            if not w.toolTip()
        ]
        assert not missing, f"{type(widget).__name__}: no tooltip on {missing}"
    assert InspectorWidget(viewer).readout.toolTip()


def test_browse_button_picks_the_output_folder(viewer, tmp_path, monkeypatch):
    import jcas_napari.napari.review_panel as panel

    review, _ = review_of(viewer, tmp_path)
    chosen = tmp_path / "elsewhere"
    monkeypatch.setattr(
        panel.QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(chosen))
    )
    review.browse_btn.click()
    assert review.out_edit.text() == str(chosen) and review.output_dir() == chosen


# ---------------------------------------------------------------- 2. undo


def test_ctrl_z_after_a_stroke_undoes_the_stroke_then_the_decision(viewer, tmp_path):
    review, _ = review_of(viewer, tmp_path)
    state, layer = review.state, viewer.layers["reviewed"]
    first = state.current
    press(viewer, "A")
    accepted = layer.data[first.frame].copy()
    y, x = 20, 28  # outside both regions
    layer.paint((first.frame, y, x), 3)  # a hand-painted stroke (napari's own paint)
    assert layer.data[first.frame, y, x] == 3
    press(viewer, "Control-Z")  # the stroke, the newest step, goes first
    assert layer.data[first.frame, y, x] == 0
    assert state.decisions[first.key] == "accept"
    np.testing.assert_array_equal(layer.data[first.frame], accepted)
    press(viewer, "Control-Z")  # then the decision
    assert first.key not in state.decisions
    assert (layer.data[first.frame][region_sel(state, first)] == 0).all()


def test_undoing_a_decision_keeps_paint_made_after_it_and_says_so(viewer, tmp_path, monkeypatch):
    from jcas_napari.napari.review import Step

    review, _ = review_of(viewer, tmp_path)
    state = review.state
    first = state.current
    review.do("accept")
    ys, xs = np.nonzero(region_sel(state, first))
    state.reviewed[first.frame, ys[0], xs[0]] = 3  # painted outside napari's history
    seen = notes(monkeypatch)
    review.do("undo")
    assert state.reviewed[first.frame, ys[0], xs[0]] == 3  # the paint is kept
    assert state.reviewed[first.frame, ys[1], xs[1]] == 0  # the rest is undone
    assert state.kept_on_undo == 1 and any("kept 1 pixels" in s for s in seen), seen
    assert "kept 1 pixels" in review.counter.text()
    review.out_edit.setText(str(tmp_path / "out"))
    review.save()
    review.save()  # the second save's line replaces the first; the undo line stays
    lines = review.counter.text().splitlines()
    assert sum("kept 1 pixels" in line for line in lines) == 1, lines
    assert sum(line.startswith("saved ") for line in lines) == 1, lines
    review.do("accept")
    assert "kept 1 pixels" not in review.counter.text()  # the notes go with the next decision
    assert "saved " not in review.counter.text()
    assert all(isinstance(step, Step) for step in state._undo)


# ---------------------------------------------------------------- 3. keys


def test_review_keys_work_on_any_layer_and_never_switch_it_to_paint_mode(viewer, tmp_path):
    review, _ = review_of(viewer, tmp_path)
    state, masks = review.state, viewer.layers["masks"]
    viewer.layers.selection.active = masks
    press(viewer, "N")
    assert state.position == 1
    press(viewer, "P")
    assert state.position == 0 and masks.mode == "pan_zoom"
    viewer.layers.selection.active = viewer.layers["frames"]
    press(viewer, "A")
    assert state.counts()["accepted"] == 1
    viewer.layers.selection.active = masks
    press(viewer, "Control-Z")
    assert state.counts()["reviewed"] == 0
    # A review that stops gives the layers their own keys back.
    viewer.layers.remove("masks")
    review.do("next")
    viewer.layers.selection.active = viewer.layers["changes"]
    press(viewer, "P")
    assert viewer.layers["changes"].mode == "paint"


# ---------------------------------------------------------------- 4. seeing the region


def test_the_region_is_shown_by_its_pixels_with_a_before_after_toggle(viewer, tmp_path):
    from jcas_napari.napari.review_view import BACKGROUND, HIGHLIGHT, PIXELS

    review, _ = review_of(viewer, tmp_path)
    state, ref = review.state, review.state.current
    pixels = viewer.layers[PIXELS]
    sel = region_sel(state, ref)
    drawn = pixels.data[ref.frame]
    assert ((drawn > 0) == sel).all()  # exactly the region's pixels
    edge = drawn == HIGHLIGHT
    assert edge.any() and (~edge & sel).any()
    inner = sel & ~edge
    np.testing.assert_array_equal(drawn[inner], state.proposed[ref.frame][inner])  # after
    colours = pixels.colormap.color_dict
    class_colours = [tuple(np.round(colours[k], 3)) for k in (1, 2, 3)]
    assert tuple(np.round(colours[HIGHLIGHT], 3)) not in class_colours
    press(viewer, "B")  # before: the original classes (background, drawn dark)
    assert not review.after_box.isChecked()
    assert (pixels.data[ref.frame][inner] == BACKGROUND).all()
    press(viewer, "N")  # the next region replaces the drawing
    nxt = state.current
    assert ((pixels.data[nxt.frame] > 0) == region_sel(state, nxt)).all()
    assert (pixels.data[ref.frame][sel] == 0).all() or nxt.frame == ref.frame


def test_changes_layer_follows_the_decisions(viewer, tmp_path):
    review, _ = review_of(viewer, tmp_path)
    state, changes = review.state, viewer.layers["changes"]
    first = state.current
    sel = region_sel(state, first)
    assert (changes.data[first.frame][sel] == 1).all()  # undecided
    review.do("accept")
    assert (changes.data[first.frame][sel] == 2).all()
    second = state.current
    review.do("reject")
    assert (changes.data[second.frame][region_sel(state, second)] == 3).all()
    review.do("undo")
    assert (changes.data[second.frame][region_sel(state, second)] == 1).all()


def test_corrected_and_reviewed_are_not_shown_on_top_of_each_other(viewer, tmp_path):
    review_of(viewer, tmp_path)
    layers = viewer.layers
    assert layers["reviewed"].visible and not layers["corrected"].visible
    assert layers.index(layers["changes"]) > layers.index(layers["reviewed"])


# ---------------------------------------------------------------- 5. matrices


def test_matrices_show_the_model_in_use_and_what_cleaning_used(viewer):
    from types import SimpleNamespace

    from jcas_napari.assets import shipped_model
    from jcas_napari.core.checkpoint import load_checkpoint
    from jcas_napari.napari.matrices import ANCHOR, NO_TRUTH, USED, MatricesWidget

    matrices = MatricesWidget(viewer)
    assert not matrices.show_true.isEnabled() and matrices.show_true.toolTip() == NO_TRUTH
    path = str(shipped_model())
    ckpt = load_checkpoint(path)
    session = matrices.session
    session.checkpoint = path
    session.cleaner = SimpleNamespace(checkpoint=ckpt, t_c=np.eye(4), source=path)
    session.model_ready.emit(path)  # a loaded checkpoint: its own matrices
    np.testing.assert_allclose(matrices.t_c, ckpt["t_c_anchor"].numpy())
    np.testing.assert_allclose(matrices.t_a, ckpt["t_a"].numpy())
    assert matrices.which.currentText() == ANCHOR and path in matrices.note.text()
    on_data = np.full((4, 4), 0.05) + 0.8 * np.eye(4)
    session.cleaner.t_c = on_data  # the cleaning estimated T_C on its frames
    session.cleaner.t_frames = (12, True)
    session.cleaned.emit([])
    np.testing.assert_allclose(matrices.t_c, on_data)  # what the rule used, labelled
    assert matrices.which.currentText() == USED and "used to clean" in matrices.note.text()
    assert "T estimated on 12 frames that the model trained on." in matrices.note.text()
    # Per distance band: each band's T_C in the list under its name.
    session.cleaner.t_bands = np.stack([np.eye(4) * (1 - b / 10) + b / 40 for b in range(5)])
    session.cleaned.emit([])
    names = [matrices.which.itemText(i) for i in range(matrices.which.count())]
    assert names[0] == USED and names[1] == "used 0-2 input px from a drawn border"
    assert names[2] == "used 2-4 input px from a drawn border"
    assert len([n for n in names if n.startswith("used ")]) == 6
    matrices.which.setCurrentIndex(5)  # 16+ px from a border
    np.testing.assert_allclose(matrices.t_c, session.cleaner.t_bands[4])
    viewer.add_labels(np.zeros((2, 4, 4), np.uint8), metadata={"true_t": np.eye(4).tolist()})
    assert matrices.show_true.isEnabled()


def test_matrix_numbers_do_not_overlap_at_the_dock_size(viewer):
    from jcas_napari.napari.matrices import MatricesWidget

    matrices = MatricesWidget(viewer)
    viewer.add_labels(np.zeros((2, 4, 4), np.uint8), metadata={"true_t": np.eye(4).tolist()})
    matrices.show_true.setChecked(True)
    matrices.resize(matrices.sizeHint())
    matrices.fig.canvas.draw()
    renderer = matrices.fig.canvas.get_renderer()
    for ax in matrices.fig.axes:
        boxes = [t.get_window_extent(renderer) for t in ax.texts]
        boxes += [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                assert not a.overlaps(b), (ax.get_title(), a, b)


# ---------------------------------------------------------------- 6. inspector


class SlowCleaner:
    """A stand-in model: records the thread it runs on and takes 0.3 s."""

    class_names = ["background", "shaft", "wrist", "clasper"]

    def __init__(self) -> None:
        self.threads: list = []

    def affinity_map(self, image, y, x):
        self.threads.append(threading.current_thread())
        time.sleep(0.3)
        return np.linspace(0, 1, image.shape[0] * image.shape[1]).reshape(image.shape[:2])

    def probabilities(self, images):
        q = np.zeros((4, *images[0].shape[:2]), np.float32)
        q[1] = 1
        return [q]


def test_inspector_runs_the_model_off_the_gui_thread(viewer, qtbot, tmp_path):
    from types import SimpleNamespace

    from jcas_napari.napari.inspector import AFFINITY, InspectorWidget

    cleaned(viewer, tmp_path)
    inspector = InspectorWidget(viewer)
    fake = SlowCleaner()
    inspector.session.checkpoint = "fake.pt"
    inspector.session.get_cleaner = lambda: fake
    began = time.perf_counter()
    inspector._on_click(viewer, SimpleNamespace(modifiers=("Alt",), position=(1, 5, 6)))
    assert time.perf_counter() - began < 0.2  # the click returns at once
    assert AFFINITY not in viewer.layers
    qtbot.waitUntil(lambda: AFFINITY in viewer.layers, timeout=10_000)
    assert fake.threads and fake.threads[0] is not threading.main_thread()
    layer = viewer.layers[AFFINITY]
    assert layer.blending == "additive" and layer.opacity < 1  # the frame stays visible
    assert "DAR" in inspector.readout.text() and "shaft" in inspector.readout.text()
    assert inspector.last["frame"] == 1 and inspector.last["class"] == "shaft"
    viewer.layers["frames"].data = viewer.layers["frames"].data[:2].copy()  # new data
    assert AFFINITY not in viewer.layers and "changed" in inspector.readout.text()


# ---------------------------------------------------------------- 7. defaults, messages


def test_default_output_is_next_to_the_data_and_shown_before_writing(viewer, tmp_path):
    from jcas_napari.napari.review_widget import ReviewWidget

    review = ReviewWidget(viewer)
    root = cleaned(viewer, tmp_path)
    assert "new cleaning results: 8 regions in 4 frames" in review.counter.text()
    shown = review.out_edit.text()
    assert shown == str(root.parent / "ds_reviewed") and not (root.parent / "ds_reviewed").exists()
    review.start()
    assert IDS[0] in review.counter.text() or any(i in review.counter.text() for i in IDS)


def test_saving_inside_the_dataset_is_refused_with_the_reason(viewer, tmp_path, monkeypatch):
    from jcas_napari.napari.review_widget import ReviewWidget

    root = cleaned(viewer, tmp_path)
    review = ReviewWidget(viewer)
    review.out_edit.setText(str(root / "reviewed"))
    seen = notes(monkeypatch)
    review.start()
    assert review.state is None and not (root / "reviewed").exists()
    assert len(seen) == 1 and "never writes into a dataset" in seen[0], seen


def test_one_notification_per_error(viewer, tmp_path, monkeypatch):
    review, _ = review_of(viewer, tmp_path)
    seen = notes(monkeypatch)
    viewer.layers.remove("masks")
    for _ in range(3):
        review.do("accept")
    assert len(seen) == 1 and "review stopped" in seen[0], seen  # not one per key
    review.start()  # another problem: the results went with the masks
    assert len(seen) == 2 and "nothing to review" in seen[1], seen


def test_frame_ids_for_the_score_table():
    from types import SimpleNamespace

    from jcas_napari.napari.names import frame_id, frame_ids

    layer = SimpleNamespace(metadata={"frame_ids": IDS}, data=np.zeros((4, 2, 2)))
    assert frame_ids(layer, 4) == IDS and frame_id(layer, 3) == "seq_02/frame001"
    assert frame_ids(SimpleNamespace(metadata={}), 2) == ["frame 0", "frame 1"]


# ---------------------------------------------------------------- 8. layout


def test_widgets_are_compact_and_the_counter_is_never_cut_off(viewer, tmp_path, qtbot):
    from jcas_napari.napari.inspector import InspectorWidget
    from jcas_napari.napari.matrices import MatricesWidget

    review, _ = review_of(viewer, tmp_path)
    for widget in (review, MatricesWidget(viewer), InspectorWidget(viewer)):
        assert widget.minimumSizeHint().height() <= 350, type(widget).__name__
    qtbot.addWidget(review)
    review.resize(300, 300)
    review.show()
    qtbot.wait(50)
    counter = review.counter
    assert counter.height() >= counter.heightForWidth(counter.width())
    assert counter.width() <= review.width()


def test_a_short_narrow_dock_keeps_start_and_save_in_view_and_says_where_it_saved(
    viewer, tmp_path, qtbot
):
    """At a laptop's dock size (1366x768 with three docks: about 280x260) Start and Save
    sit at the top, nothing needs a sideways scroll, and the counter names the folder
    saved to in full (the notification cuts long paths)."""
    from qtpy.QtWidgets import QScrollArea

    review, root = review_of(viewer, tmp_path)
    qtbot.addWidget(review)
    review.resize(280, 260)
    review.show()
    qtbot.wait(50)
    scroll = review.findChild(QScrollArea)
    assert not scroll.horizontalScrollBar().isVisible()
    for button in (review.start_btn, review.save_btn):
        top_left = button.mapTo(scroll.viewport(), button.rect().topLeft())
        assert 0 <= top_left.y() and top_left.y() + button.height() <= scroll.viewport().height()
    review.out_edit.setText(str(tmp_path / "out"))
    paths = review.save()
    assert len(paths) == 4
    assert f"saved 4 masks to {tmp_path / 'out' / 'masks'}" in review.counter.text()
    review.save()
    assert review.counter.text().count("saved 4 masks to") == 1


# ---------------------------------------------------------------- docs/matrices.png


def test_matrices_screenshot_of_the_shipped_model(make_napari_viewer, qtbot, tmp_path):
    """The matrices dock alone at its default size, with the shipped model's held-out T_C
    beside the true T_C of the flip sample (JCAS_WRITE_DOCS=1 writes docs/matrices.png)."""
    import os
    from pathlib import Path

    from jcas_napari.assets import shipped_model
    from jcas_napari.data.io import write_image
    from jcas_napari.napari.matrices import MatricesWidget

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1280, 800)
    viewer.open_sample("jcas-napari", "flip-sequence")
    matrices = MatricesWidget(viewer)
    viewer.window.add_dock_widget(matrices, name="Transition matrices", area="right")
    from jcas_napari.core.clean import Cleaner

    path = str(shipped_model())
    matrices.session.checkpoint = path
    matrices.session.cleaner = Cleaner(path)  # loaded, as the cleaning worker leaves it
    matrices.session.model_ready.emit(path)
    assert matrices.show_true.isEnabled()
    matrices.show_true.setChecked(True)
    assert len(matrices.fig.axes) == 3  # estimated T_C, true T_C, T_A
    qtbot.wait(300)
    docs = Path(__file__).resolve().parents[1] / "docs"
    out = (docs if os.environ.get("JCAS_WRITE_DOCS") else tmp_path) / "matrices.png"
    img = viewer.screenshot(canvas_only=False, flash=False)
    write_image(out, np.ascontiguousarray(img[..., :3]))
    assert img[..., :3].std() > 10
