"""core and data import without napari or Qt; the package never imports torch eagerly."""

from __future__ import annotations

import subprocess
import sys

BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in {'napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6',
                                  'magicgui', 'vispy'}:
            raise ImportError(f'blocked: {name}')
sys.meta_path.insert(0, Block())
"""


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + code], capture_output=True, text=True)


def test_core_and_data_import_without_napari_or_qt():
    res = _run(
        "import jcas_napari.core, jcas_napari.core.metrics, jcas_napari.data.io,"
        " jcas_napari.data.noise, jcas_napari.data.synthetic, jcas_napari.data.make,"
        " jcas_napari.cli, jcas_napari.core.model, jcas_napari.core.losses,"
        " jcas_napari.core.dar, jcas_napari.core.transitions\nprint('ok')"
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


def test_no_gui_or_torch_modules_loaded_by_data_layer():
    res = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, jcas_napari.data.noise, jcas_napari.data.make, jcas_napari.cli\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "{'napari','qtpy','PyQt5','magicgui','vispy','torch'}]\nprint(bad)",
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
