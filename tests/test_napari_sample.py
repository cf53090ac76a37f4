"""The plugin's manifest is valid and its sample data opens in a real (headless) viewer."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")


def test_manifest_is_valid():
    from importlib.resources import files

    from npe2 import PluginManifest

    pm = PluginManifest.from_file(files("jcas_napari") / "napari.yaml")
    assert pm.name == "jcas-napari"
    assert [s.key for s in pm.contributions.sample_data] == ["synthetic-scene"]


@pytest.mark.gui
def test_sample_data_opens_with_layers(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("jcas-napari", "synthetic-scene")
    names = [layer.name for layer in viewer.layers]
    assert names == ["frames", "masks_clean (truth)", "masks (noisy)"]
    frames, noisy = viewer.layers["frames"].data, viewer.layers["masks (noisy)"].data
    assert frames.shape == (8, 256, 320, 3) and noisy.shape == (8, 256, 320)
    assert set(np.unique(noisy)) <= {0, 1, 2, 3} and (noisy > 0).any()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot.ndim == 3 and shot.shape[2] == 4
    # Something is drawn: the reddish tissue, not a blank canvas.
    assert shot[..., 0].astype(float).mean() > shot[..., 2].astype(float).mean() + 10
    from jcas_napari.data.io import write_image

    write_image(tmp_path / "sample.png", shot[..., :3])
    assert (tmp_path / "sample.png").stat().st_size > 1000
