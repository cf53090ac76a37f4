"""Every benchmark checks what it needs before any work (``--check-imports``), cheaply.

All scripts run in one interpreter (``runpy``), so torch is imported once; the check
itself only looks modules up, so napari and cleanlab are never imported here.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if p.name != "requires.py")
DRIVER = """
import contextlib, io, json, runpy, sys
sys.path.insert(0, {bench!r})
codes = {{}}
for name, args in {runs!r}:
    sys.argv = [name, *args]
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            runpy.run_path({bench!r} + "/" + name, run_name="__main__")
        codes[name + " " + " ".join(args)] = [None, err.getvalue()]
    except SystemExit as exc:
        codes[name + " " + " ".join(args)] = [exc.code, err.getvalue()]
print(json.dumps(codes))
"""


@pytest.fixture(scope="module")
def checked() -> dict[str, list]:
    """exit code and stderr of each script's ``--check-imports``, plus bench_quality's
    check for a run without cleanlab."""
    runs = [(s, ["--check-imports"]) for s in SCRIPTS]
    runs.append(("bench_quality.py", ["--check-imports", "--methods", "ce", "jcas"]))
    code = DRIVER.format(bench=str(BENCH), runs=runs)
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=BENCH
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_every_benchmark_has_an_import_check(checked):
    assert len(SCRIPTS) >= 7
    for name in SCRIPTS:
        if name == "bench_quality.py" and importlib.util.find_spec("cleanlab") is None:
            continue  # below
        assert checked[f"{name} --check-imports"] == [0, ""], name


def test_a_missing_module_stops_before_any_work_in_one_line(checked):
    code, err = checked["bench_quality.py --check-imports"]
    if importlib.util.find_spec("cleanlab") is not None:
        assert code == 0
    else:  # its default methods include cleanlab: refused at once, with the fix
        assert code == 2 and err.count("\n") == 1
        assert "missing module(s) cleanlab" in err and "pip install" in err
    # Without the cleanlab method it has everything.
    assert checked["bench_quality.py --check-imports --methods ce jcas"] == [0, ""]
