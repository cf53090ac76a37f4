"""The package's layers import downwards only: data < core < napari/cli/batch.

``tests/test_imports.py`` checks that a fixed list of modules imports without napari or Qt.
Here every module is found on disk, so new modules are covered too:

- each ``jcas_napari.data`` module, imported alone in a fresh interpreter, loads nothing of
  the layers above it (``core``, the plugin, the CLI, the batch pipeline);
- no ``jcas_napari.data`` or ``jcas_napari.core`` module has an import of a GUI package or
  (for data) of an upper layer anywhere in its source, function-level imports included;
- the bottom modules of the data layer stay leaves.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "jcas_napari"
GUI = {"napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "vispy"}
ABOVE_DATA = ("jcas_napari.core", "jcas_napari.napari", "jcas_napari.cli", "jcas_napari.batch")
LEAVES = ("jcas_napari.data.schema", "jcas_napari.data.metrics")


def _modules(layer: str) -> list[str]:
    return sorted(
        f"jcas_napari.{layer}" + ("" if p.stem == "__init__" else f".{p.stem}")
        for p in (PACKAGE / layer).glob("*.py")
    )


def _loaded_after_import(module: str) -> list[str]:
    """Names in ``sys.modules`` after importing ``module`` alone in a fresh interpreter."""
    code = f"import sys, {module}\nprint('\\n'.join(sorted(sys.modules)))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return res.stdout.split()


def _imported_names(path: Path) -> set[str]:
    """Every module named by an import statement in ``path``, at any depth."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            raise AssertionError(f"{path}: relative import; use jcas_napari.… paths")
    return names


def _under(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_layers_have_modules():
    assert "jcas_napari.data.io" in _modules("data")
    assert "jcas_napari.core.metrics" in _modules("core")


@pytest.mark.parametrize("module", _modules("data"))
def test_data_module_imports_no_upper_layer(module):
    loaded = _loaded_after_import(module)
    above = [m for m in loaded if _under(m, ABOVE_DATA)]
    assert not above, f"{module} pulls in {above}"
    gui = [m for m in loaded if m.split(".")[0] in GUI]
    assert not gui, f"{module} pulls in {gui}"


@pytest.mark.parametrize("layer", ["data", "core"])
def test_no_gui_or_upward_import_anywhere_in_the_source(layer):
    """Also catches imports inside functions, which an import-time check never runs."""
    forbidden = tuple(GUI) + (ABOVE_DATA if layer == "data" else ABOVE_DATA[1:])
    bad = {}
    for path in sorted((PACKAGE / layer).glob("*.py")):
        hits = sorted(n for n in _imported_names(path) if _under(n, forbidden))
        if hits:
            bad[f"{layer}/{path.name}"] = hits
    assert not bad, f"imports across the layers: {bad}"


def test_all_core_modules_import_without_gui():
    modules = ", ".join(_modules("core"))
    code = (
        f"import sys, {modules}\n"
        f"print([m for m in sys.modules if m.split('.')[0] in {sorted(GUI)!r}])"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


@pytest.mark.parametrize("module", LEAVES)
def test_bottom_data_modules_are_leaves(module):
    ours = [m for m in _loaded_after_import(module) if m.startswith("jcas_napari.")]
    assert ours == sorted({"jcas_napari.data", module}), ours
