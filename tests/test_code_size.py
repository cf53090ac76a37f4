"""Size limits that keep the code base easy to carry: modules <= 400 lines, functions <= 60."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "jcas_napari"
MAX_MODULE, MAX_FUNCTION = 400, 60


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def test_modules_stay_small():
    big = {
        str(p.relative_to(PACKAGE)): n
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE
    }
    assert not big, f"modules over {MAX_MODULE} lines: {big}"


def test_functions_stay_small():
    long = {}
    for p in _modules():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION:
                    long[f"{p.relative_to(PACKAGE)}:{node.name}"] = n
    assert not long, f"functions over {MAX_FUNCTION} lines: {long}"
