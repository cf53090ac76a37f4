"""What a benchmark needs, checked before it starts any work.

A benchmark that imports a package only when it reaches the step that uses it (cleanlab
after training, napari after generating data) would fail after minutes, with a traceback.
Each script instead names every module it will import and calls ``require`` first thing in
``main``: a missing one stops it at once, in one line that says how to install it.
``--check-imports`` (every script has it) runs only this check: the test suite uses it.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# How to get each optional module that a benchmark may need.
HINTS = {
    "cleanlab": "pip install -e '.[bench]'",
    "napari": "pip install -e '.[test]'",
    "qtpy": "pip install -e '.[test]'",
    "reference": "run from a checkout: it lives in tests/",
}


def _found(name: str) -> bool:
    """Whether ``name`` can be imported, without importing it (napari takes seconds)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a missing parent package of a dotted name
        return False


def require(script: str, modules: Iterable[str], check_only: bool = False) -> None:
    """Exit 2 with one line naming every missing module of ``modules``; with
    ``check_only`` (``--check-imports``) exit 0 once all are there."""
    if str(ROOT / "tests") not in sys.path:
        sys.path.append(str(ROOT / "tests"))  # tests/reference.py: the naive forms
    missing = [m for m in dict.fromkeys(modules) if not _found(m)]
    if missing:
        how = "; ".join(f"{m}: {HINTS.get(m.split('.')[0], 'pip install ' + m)}" for m in missing)
        print(f"{script}: missing module(s) {', '.join(missing)} ({how})", file=sys.stderr)
        sys.exit(2)
    if check_only:
        print(f"{script}: imports OK")
        sys.exit(0)


def add_flag(parser) -> None:
    """The ``--check-imports`` option of every benchmark's argparse parser."""
    parser.add_argument(
        "--check-imports",
        action="store_true",
        help="only check that every module this benchmark needs is installed, then exit",
    )
