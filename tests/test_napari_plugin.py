"""The napari plugin, headless (xvfb): reader, writer, samples, and the whole GUI flow.

Set JCAS_WRITE_DOCS=1 to write the screenshots into docs/ (they are committed there).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from qtpy.QtCore import Qt

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

DOCS = Path(__file__).resolve().parents[1] / "docs"


def shot_path(tmp_path: Path, name: str) -> Path:
    return (DOCS if os.environ.get("JCAS_WRITE_DOCS") else tmp_path) / name


def save_shot(viewer, path: Path, canvas_only: bool = False) -> np.ndarray:
    from jcas_napari.data.io import write_image

    img = viewer.screenshot(canvas_only=canvas_only, flash=False)
    write_image(path, np.ascontiguousarray(img[..., :3]))
    assert img.shape[0] > 200 and img[..., :3].std() > 10  # not a blank window
    return img


def file_hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(autouse=True)
def _thaw_gc():
    """The trainer freezes long-lived objects (see runtime.freeze_long_lived); each test
    starts and ends thawed so that napari's own leak checks can collect viewers."""
    import gc

    yield
    gc.unfreeze()


@pytest.fixture
def dataset(tmp_path):
    from jcas_napari.data.make import make_dataset

    return make_dataset(
        tmp_path / "ds", sequences=1, frames=6, size=(128, 160), noise="mix", seed=2
    )


def test_manifest_is_valid():
    from importlib.resources import files

    from npe2 import PluginManifest

    pm = PluginManifest.from_file(files("jcas_napari") / "napari.yaml")
    assert pm.name == "jcas-napari"
    assert {s.key for s in pm.contributions.sample_data} == {"noisy-sequence", "flip-sequence"}
    assert len(pm.contributions.widgets) == 4 and len(pm.contributions.readers) == 1


def test_reader_layouts(dataset, tmp_path):
    from jcas_napari.data.io import open_dataset, write_stack
    from jcas_napari.napari.reader import get_reader

    layers = get_reader(str(dataset))(str(dataset))
    assert [lay[2] for lay in layers] == ["image", "labels", "labels"]
    assert layers[0][0].shape == (6, 128, 160, 3) and layers[-1][0].shape == (6, 128, 160)
    assert layers[-1][1]["metadata"]["frame_ids"][0] == "seq_01/frame000"
    ds = open_dataset(dataset)
    np.testing.assert_array_equal(layers[-1][0][3], ds[3].mask)  # the user's masks: last
    images = np.stack([s.image for s in ds])
    masks = np.stack([s.mask for s in ds])
    write_stack(tmp_path / "stack", images, masks)
    stack = get_reader(str(tmp_path / "stack" / "images.tif"))(None)
    np.testing.assert_array_equal(stack[-1][0], masks)
    assert get_reader(str(tmp_path)) is None  # not a dataset: other readers may try


def test_reader_bad_input_notifies(tmp_path, monkeypatch):
    import napari.utils.notifications as notes

    from jcas_napari.napari.reader import get_reader

    seen = []
    monkeypatch.setattr(notes, "show_error", seen.append)
    (tmp_path / "bad" / "images").mkdir(parents=True)
    (tmp_path / "bad" / "images" / "a.png").write_bytes(b"not a png")
    (tmp_path / "bad" / "masks").mkdir()
    result = get_reader(str(tmp_path / "bad"))(None)
    assert result == [(None,)]
    assert len(seen) == 1 and "a.png" in seen[0] and "mask" in seen[0]


def test_reader_frames_of_different_sizes_notify(tmp_path, monkeypatch):
    import napari.utils.notifications as notes

    from jcas_napari.data.io import frame_path, write_image, write_mask
    from jcas_napari.napari.reader import get_reader

    seen = []
    monkeypatch.setattr(notes, "show_error", seen.append)
    for name, (h, w) in (("a", (16, 20)), ("b", (24, 20))):
        write_image(frame_path(tmp_path / "ds", "images", name), np.zeros((h, w, 3), np.uint8))
        write_mask(frame_path(tmp_path / "ds", "masks", name), np.zeros((h, w), np.uint8))
    assert get_reader(str(tmp_path / "ds"))(None) == [(None,)]
    assert len(seen) == 1 and "b.png" in seen[0] and "(24, 20)" in seen[0], seen


def test_reader_very_large_frames_hold_one_copy(tmp_path):
    """Two 3000x4000 frames open at full size; peak memory is about one copy of the data
    (72 MB frames + 24 MB masks) over the interpreter with napari imported."""
    import subprocess
    import sys

    from jcas_napari.data.io import frame_path, write_image, write_mask

    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        write_image(
            frame_path(tmp_path / "big", "images", name),
            rng.integers(0, 255, (3000, 4000, 3), dtype=np.uint8),
        )
        m = np.zeros((3000, 4000), np.uint8)
        m[1000:2000, 1000:3000] = 2
        write_mask(frame_path(tmp_path / "big", "masks", name), m)
    code = (
        "import sys, napari.utils.notifications\n"
        "from jcas_napari.napari.reader import get_reader\n"
        "def hwm():\n"
        "    return int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]"
        ".split()[1]) // 1024\n"
        "base = hwm()\n"
        "layers = get_reader(sys.argv[1])(None)\n"
        "print('SHAPES', [lay[0].shape for lay in layers], 'LABEL', int(layers[1][0].max()))\n"
        "print('PEAK', hwm() - base)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "big")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    out = dict(line.split(" ", 1) for line in res.stdout.splitlines())
    assert out["SHAPES"].startswith("[(2, 3000, 4000, 3), (2, 3000, 4000)]"), out
    assert out["SHAPES"].endswith("LABEL 2")
    # One copy of the data is 96 MB; decoding a frame holds two copies of it (PIL's and
    # numpy's, 72 MB) for a moment. Measured 172 MiB; stacking a list of frames gave 184
    # and kept 23 MiB more afterwards.
    assert int(out["PEAK"]) < 200, f"reader peak {out['PEAK']} MiB above the interpreter's"


def test_writer_folder_tiff_and_refusal(dataset, tmp_path):
    from jcas_napari.data.io import DatasetError, read_mask
    from jcas_napari.napari.writer import write_labels

    masks = np.random.default_rng(0).integers(0, 4, (2, 16, 20)).astype(np.uint8)
    meta = {"metadata": {"frame_ids": ["s/a", "s/b"]}}
    paths = write_labels(str(tmp_path / "out"), masks, meta)
    assert [Path(p).name for p in paths] == ["a.png", "b.png"]
    np.testing.assert_array_equal(read_mask(tmp_path / "out" / "s" / "b.png"), masks[1])
    (tif,) = write_labels(str(tmp_path / "m.tif"), masks, {})
    import tifffile

    np.testing.assert_array_equal(tifffile.imread(tif), masks)
    before = file_hashes(dataset / "masks")
    with pytest.raises(DatasetError, match="refusing to overwrite a user's mask"):
        write_labels(
            str(dataset / "masks" / "seq_01"), masks[:1], {"metadata": {"frame_ids": ["frame000"]}}
        )
    assert file_hashes(dataset / "masks") == before


def test_samples_open(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("jcas-napari", "flip-sequence")
    names = [lay.name for lay in viewer.layers]
    assert names == ["frames", "masks_clean (truth)", "masks (noisy)"]
    noisy = viewer.layers["masks (noisy)"]
    assert noisy.data.shape == (8, 256, 320) and set(np.unique(noisy.data)) <= {0, 1, 2, 3}
    assert np.allclose(np.sum(noisy.metadata["true_t"], 1), 1)


def test_sample_data_train_cancel_restart_clean(make_napari_viewer, qtbot):
    """The issue's path on the sample data: train in the worker, cancel, restart, clean."""
    from jcas_napari.napari.trainer import TrainerWidget

    viewer = make_napari_viewer()
    viewer.open_sample("jcas-napari", "noisy-sequence")
    noisy = viewer.layers["masks (noisy)"].data.copy()
    trainer = TrainerWidget(viewer)
    trainer.warmup.setValue(0)
    trainer.jcas.setValue(3)
    steps = []
    trainer.session.progress.connect(lambda ev: ev.kind == "step" and steps.append(ev.step))
    trainer.start()
    qtbot.waitUntil(lambda: len(steps) >= 1, timeout=60_000)
    trainer.cancel()
    qtbot.waitUntil(lambda: trainer.start_btn.isEnabled(), timeout=60_000)
    assert trainer.session.checkpoint is None and "corrected" not in viewer.layers
    trainer.start()
    results = {"corrected", "changes", "confidence"}
    qtbot.waitUntil(
        lambda: results <= {lay.name for lay in viewer.layers} and trainer.start_btn.isEnabled(),
        timeout=120_000,
    )
    assert trainer.session.checkpoint.endswith("best.pt")
    corrected = viewer.layers["corrected"].data
    assert corrected.shape == noisy.shape == (8, 256, 320)
    np.testing.assert_array_equal(viewer.layers["masks (noisy)"].data, noisy)  # untouched
    np.testing.assert_array_equal(viewer.layers["changes"].data > 0, corrected != noisy)
    assert trainer.table.rowCount() == 8
    # Results whose masks are removed before their layers are in are dropped (this raised
    # inside napari when the viewer closed mid-way).
    from jcas_napari.napari.layers import class_info_of

    trainer.show_results(trainer.session.results, class_info_of(viewer.layers["masks (noisy)"]))
    viewer.layers.clear()
    qtbot.wait(300)
    assert len(viewer.layers) == 0


def test_whole_flow_train_cancel_restart_clean_review_save(
    make_napari_viewer, qtbot, dataset, tmp_path
):
    from jcas_napari.napari.inspector import InspectorWidget
    from jcas_napari.napari.matrices import MatricesWidget
    from jcas_napari.napari.review_widget import ReviewWidget
    from jcas_napari.napari.trainer import TrainerWidget

    originals = file_hashes(dataset)
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1700, 1050)
    viewer.open(str(dataset), plugin="jcas-napari")
    assert [lay.name for lay in viewer.layers] == ["frames", "masks_clean", "masks"]
    # The user's masks are on top and selected: the hidden truth is never what a brush edits.
    assert list(viewer.layers.selection) == [viewer.layers["masks"]]
    trainer = TrainerWidget(viewer)
    matrices = MatricesWidget(viewer)
    viewer.window.add_dock_widget(trainer, name="JCAS trainer", area="right")
    viewer.window.add_dock_widget(matrices, name="Transition matrices", area="right")
    assert trainer.image_combo.currentText() == "frames"
    assert trainer.mask_combo.currentText() == "masks"
    trainer.warmup.setValue(0)
    trainer.jcas.setValue(12)  # enough steps for the screenshot to show a loss curve

    # Start, then cancel at once: no model is produced, the previous (none) stays.
    trainer.start()
    trainer.cancel()
    qtbot.waitUntil(lambda: trainer.start_btn.isEnabled(), timeout=60_000)
    assert trainer.session.checkpoint is None and "corrected" not in viewer.layers

    # Restart and let it finish: training, then cleaning, fill the layers and the table.
    events = []
    trainer.session.progress.connect(events.append)
    trainer.start()
    qtbot.waitUntil(lambda: sum(e.kind == "step" for e in events) >= 8, timeout=60_000)
    save_shot(viewer, shot_path(tmp_path, "trainer.png"))
    # The three result layers are added one per event-loop turn.
    results = {"corrected", "changes", "confidence"}
    qtbot.waitUntil(
        lambda: results <= {lay.name for lay in viewer.layers} and trainer.start_btn.isEnabled(),
        timeout=120_000,
    )
    assert trainer.session.checkpoint.endswith("best.pt")
    import gc

    assert gc.get_freeze_count() == 0  # the run is over: nothing stays frozen
    assert events[-1].stage == 2 and np.allclose(matrices.t_c.sum(1), 1)
    corrected, changes = viewer.layers["corrected"].data, viewer.layers["changes"].data
    masks = viewer.layers["masks"].data
    assert corrected.shape == masks.shape and ((corrected != masks) == (changes > 0)).all()
    assert trainer.table.rowCount() == 6
    scores = [float(trainer.table.item(r, 1).text()) for r in range(6)]
    assert scores == sorted(scores, reverse=True)
    trainer._jump_to_row(2, 0)
    frame = viewer.dims.current_step[0]
    assert frame == trainer.table.item(2, 0).data(Qt.UserRole)
    # The table names frames by their dataset ids (seq_xx/frameNNN), not by index.
    assert trainer.table.item(2, 0).text() == viewer.layers["masks"].metadata["frame_ids"][frame]
    matrices.show_true.setChecked(True)
    save_shot(viewer, tmp_path / "matrices_beside_trainer.png")  # docs: test_gui_review.py

    # Affinity inspector (the trainer and matrices docks make room for it).
    viewer.window.remove_dock_widget(trainer)
    viewer.window.remove_dock_widget(matrices)
    viewer.layers["changes"].visible = False
    viewer.layers["corrected"].visible = False
    inspector = InspectorWidget(viewer)
    viewer.window.add_dock_widget(inspector, name="Affinity inspector", area="right")
    qtbot.wait(300)
    assert inspector.inspect(1, 64, 80)  # the model runs in a worker
    qtbot.waitUntil(lambda: inspector.last is not None, timeout=30_000)
    info = inspector.last
    assert info["class"] in ("background", "shaft", "wrist", "clasper")
    assert abs(sum(info["share"].values()) - 1) < 1e-6
    amap = viewer.layers["affinity"].data
    assert amap.shape == (128, 160) and amap.max() <= 1 + 1e-6
    save_shot(viewer, shot_path(tmp_path, "inspector.png"))
    viewer.layers.remove("affinity")
    viewer.layers.remove("clicked pixel")
    viewer.window.remove_dock_widget(inspector)
    viewer.layers["changes"].visible = True

    # Review with the keys, including undo, then save.
    review = ReviewWidget(viewer)
    viewer.window.add_dock_widget(review, name="Review corrections", area="right")
    out = tmp_path / "reviewed"
    review.out_edit.setText(str(out))
    review.start()
    qtbot.wait(300)
    state = review.state
    assert state.order, "the model proposed no change to review"
    layer = viewer.layers["reviewed"]
    first = state.current
    # A yellow box marks the region under review, on its frame.
    (box,) = viewer.layers["current region"].data
    y0, x0, y1, x1 = first.bbox
    assert (box[:, 0] == first.frame).all()
    assert box[:, 1].min() == y0 - 1.25 and box[:, 2].max() == x1 + 0.25  # edge outside
    assert viewer.layers.selection.active is layer  # the keys stay with `reviewed`
    # The view is centred near the region and stays inside the frame.
    from jcas_napari.napari.review_widget import _canvas_px

    assert _canvas_px(viewer) is not None  # napari exposes the canvas size: clamping is on
    cy, cx = viewer.scene.camera.center[-2:]
    assert 0 < cy < 128 and 0 < cx < 160
    assert abs(cy - first.centre[0]) < 64 and abs(cx - first.centre[1]) < 80

    def key(name: str) -> None:
        from app_model.types import KeyBinding

        layer.keymap[KeyBinding.from_str(name)](layer)

    key("A")  # accept the first region
    sel = state.regions[first.frame] == first.label
    assert (changes[first.frame][sel] == 2).all()  # the changes layer shows it accepted
    assert (layer.data[first.frame][sel] == corrected[first.frame][sel]).all()
    assert state.decisions[first.key] == "accept"
    if len(state.order) > 1:
        second = state.current
        key("R")  # reject the next one
        sel2 = state.regions[second.frame] == second.label
        assert (layer.data[second.frame][sel2] == masks[second.frame][sel2]).all()
        key("Ctrl+Z")  # undo the reject: still the original there, decision gone
        assert second.key not in state.decisions
    key("Ctrl+Z")  # undo the accept
    assert (layer.data[first.frame][sel] == masks[first.frame][sel]).all()
    assert state.counts()["reviewed"] == 0
    frame = state.current.frame
    key("Shift+A")  # accept the whole frame of the current region
    in_frame = [r for r in state.order if r.frame == frame]
    assert state.counts()["accepted"] == len(in_frame)
    np.testing.assert_array_equal(layer.data[frame], corrected[frame])
    assert (out / "review_state.json").exists()
    cur = state.current  # the box follows the walk, and holds the region's changed pixels
    (box,) = viewer.layers["current region"].data
    y0, x0, y1, x1 = cur.bbox
    assert box[0, 0] == cur.frame and (box[0, 1], box[0, 2]) == (y0 - 1.25, x0 - 1.25)
    assert (
        changes[cur.frame][y0:y1, x0:x1][state.regions[cur.frame][y0:y1, x0:x1] == cur.label] >= 1
    ).all()
    save_shot(viewer, shot_path(tmp_path, "review.png"))
    paths = review.save()
    assert len(paths) == 6 and (out / "masks" / "seq_01" / "frame000.png").exists()
    from jcas_napari.data.io import read_mask

    saved = np.stack([read_mask(p) for p in sorted(paths)])
    np.testing.assert_array_equal(saved, layer.data)
    assert file_hashes(dataset) == originals  # the user's files are byte-identical

    # Reopening resumes the saved decisions.
    review2 = ReviewWidget(viewer)
    review2.out_edit.setText(str(out))
    review2.start()
    assert review2.state.decisions == state.decisions
    np.testing.assert_array_equal(review2.state.reviewed, saved)


def test_reader_flat_layout(tmp_path):
    from jcas_napari.data.io import frame_path, write_image, write_mask
    from jcas_napari.napari.reader import get_reader

    rng = np.random.default_rng(0)
    for i in range(2):
        write_image(
            frame_path(tmp_path / "flat", "images", f"f{i}"),
            rng.integers(0, 255, (16, 20, 3), dtype=np.uint8),
        )
        write_mask(frame_path(tmp_path / "flat", "masks", f"f{i}"), np.full((16, 20), i, np.uint8))
    layers = get_reader(str(tmp_path / "flat"))(None)
    assert [lay[2] for lay in layers] == ["image", "labels"]
    assert layers[1][0][:, 0, 0].tolist() == [0, 1]


def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def test_twenty_start_cancel_cycles(make_napari_viewer, qtbot, monkeypatch):
    """No leaked threads or models, resident memory within 10%, the viewer stays usable.

    This test found that cancelled runs kept their models alive (worker.quit() left the
    generator suspended; cancel is now cooperative and the generator is closed), that a
    slot holding its worker kept every worker alive, and that glibc kept each run's freed
    memory in the worker thread's arena (about 14 MiB per cycle; the trainer now trims it).
    A first run that reaches a few steps comes before the baseline: the first steps set up
    caches (torch's allocator and kernels) that stay for the life of the process."""
    import gc
    import threading
    import weakref

    from jcas_napari.core.model import JCASNet
    from jcas_napari.napari.trainer import TrainerWidget

    models, built = weakref.WeakSet(), []  # the models the runs build, while alive
    build = JCASNet.__init__

    def tracked_init(self, *args, **kwargs) -> None:
        build(self, *args, **kwargs)
        models.add(self)
        built.append(1)

    monkeypatch.setattr(JCASNet, "__init__", tracked_init)
    viewer = make_napari_viewer()
    viewer.open_sample("jcas-napari", "noisy-sequence")
    trainer = TrainerWidget(viewer)
    trainer.warmup.setValue(0)
    trainer.jcas.setValue(5)

    def cycle() -> None:
        trainer.start()
        qtbot.wait(50)
        trainer.cancel()
        qtbot.waitUntil(lambda: trainer.start_btn.isEnabled(), timeout=60_000)

    trainer.start()
    qtbot.waitUntil(lambda: trainer.progress.value() >= 3, timeout=60_000)
    trainer.cancel()
    qtbot.waitUntil(lambda: trainer.start_btn.isEnabled(), timeout=60_000)
    cycle()
    gc.collect()
    threads, rss = threading.active_count(), _rss_mib()
    for _ in range(20):
        cycle()
        assert trainer.session.checkpoint is None  # every run was cancelled
    qtbot.wait(200)
    gc.collect()  # frozen objects would survive this: the runs must have thawed them
    assert threading.active_count() <= threads
    assert len(built) >= 10, len(built)  # most runs got as far as building their model
    # At most the last run's model (its worker may not be collected yet).
    assert len(models) <= 1, f"{len(models)} models of finished runs still alive"
    rss_after = _rss_mib()
    print(f"RSS after 2 runs {rss:.0f} MiB, after 22 runs {rss_after:.0f} MiB")
    assert rss_after <= 1.10 * rss, f"resident memory grew from {rss:.0f} to {rss_after:.0f} MiB"
    viewer.dims.set_current_step(0, 3)  # still responsive
    assert viewer.dims.current_step[0] == 3


def test_alt_click_shows_affinity_and_plain_click_does_not(make_napari_viewer, qtbot):
    from types import SimpleNamespace

    from jcas_napari.napari.inspector import InspectorWidget
    from jcas_napari.napari.trainer import SHIPPED

    viewer = make_napari_viewer()
    viewer.open_sample("jcas-napari", "noisy-sequence")
    inspector = InspectorWidget(viewer)
    inspector.session.checkpoint = str(SHIPPED)
    inspector._on_click(viewer, SimpleNamespace(modifiers=(), position=(2, 100, 120)))
    assert "affinity" not in viewer.layers  # plain clicks stay with the active layer
    inspector._on_click(viewer, SimpleNamespace(modifiers=("Alt",), position=(2, 100, 120)))
    qtbot.waitUntil(lambda: "affinity" in viewer.layers, timeout=30_000)  # from a worker
    amap = viewer.layers["affinity"].data
    assert amap.shape == (256, 320) and 0 <= amap.min() and amap.max() <= 1 + 1e-6
    assert viewer.layers["clicked pixel"].data.tolist() == [[100, 120]]
    assert "frame 2, pixel (100, 120)" in inspector.readout.text()


def test_gc_is_frozen_only_while_a_run_is_in_flight(make_napari_viewer, qtbot):
    """The trainer hides long-lived objects from full collections (the GUI's longest
    stalls) while its run is in flight, and hands them back when the run is over."""
    import gc

    from jcas_napari.napari.trainer import TrainerWidget

    viewer = make_napari_viewer()
    viewer.open_sample("jcas-napari", "noisy-sequence")
    trainer = TrainerWidget(viewer)
    trainer.warmup.setValue(0)
    trainer.jcas.setValue(5)
    assert gc.get_freeze_count() == 0
    trainer.start()
    assert gc.get_freeze_count() > 100_000  # napari and torch objects
    qtbot.wait(50)
    trainer.cancel()
    qtbot.waitUntil(lambda: trainer.start_btn.isEnabled(), timeout=60_000)
    assert gc.get_freeze_count() == 0


def test_review_view_stays_inside_the_frame():
    from jcas_napari.napari.review_widget import _centre_inside

    # 128x160 frame (napari: y in [-0.5, 127.5]), 400x400 px canvas at 5 px per pixel: an
    # 80x80 view, whose centre may go from 39.5 to 87.5 in y and to 119.5 in x.
    assert _centre_inside((2, 150), (128, 160), (400, 400), 5.0) == (39.5, 119.5)
    assert _centre_inside((64, 80), (128, 160), (400, 400), 5.0) == (64, 80)
    # The view spans the whole height: centred on the frame on that axis.
    assert _centre_inside((2, 150), (128, 160), (800, 400), 5.0) == (63.5, 119.5)
    # Canvas size unknown: the region's centre as it is.
    assert _centre_inside((2, 150), (128, 160), None, 5.0) == (2, 150)


def test_napari_demo_opens_the_sample_and_docks_the_widgets(make_napari_viewer, monkeypatch):
    """`make demo` with a display runs examples/napari_demo.py: check what it opens."""
    import importlib.util

    import napari

    path = Path(__file__).resolve().parents[1] / "examples" / "napari_demo.py"
    spec = importlib.util.spec_from_file_location("napari_demo", path)
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    viewers = []
    monkeypatch.setattr(
        napari, "Viewer", lambda **kw: viewers.append(make_napari_viewer(**kw)) or viewers[-1]
    )
    monkeypatch.setattr(napari, "run", lambda: None)
    demo.main()
    (viewer,) = viewers
    assert [lay.name for lay in viewer.layers] == ["frames", "masks_clean (truth)", "masks (noisy)"]
    docked = " ".join(viewer.window.dock_widgets)
    for name in ("JCAS trainer", "Transition matrices", "Review corrections"):
        assert name in docked, docked
    trainer = next(w for k, w in viewer.window.dock_widgets.items() if "JCAS trainer" in k)
    assert trainer.image_combo.currentText() == "frames"
    assert trainer.mask_combo.currentText() == "masks (noisy)"  # not the truth layer
