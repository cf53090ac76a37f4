"""The rule that decides which starting model ships (benchmarks/compare_init.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import compare_init  # noqa: E402


def _cells(**deltas: float) -> dict:
    """{"a clean": {"delta": ...}, ...} from keyword names like a_clean=-0.003."""
    return {
        k.replace("_", " "): {"delta": v, "pred": 0.5, "changed": 0.0} for k, v in deltas.items()
    }


def test_cell_means_average_over_seeds():
    rows = [
        {"family": "a", "preset": "mix", "delta": 0.02, "pred": 0.5, "changed": 0.01},
        {"family": "a", "preset": "mix", "delta": 0.04, "pred": 0.7, "changed": 0.03},
        {
            "family": "b",
            "preset": "symmetric50",
            "delta": 0.3,
            "pred": 0.4,
            "changed": 0.4,
            "t_mae": 0.05,
        },
    ]
    cells = compare_init.cell_means(rows)
    assert cells["a mix"] == pytest.approx({"delta": 0.03, "pred": 0.6, "changed": 0.02})
    assert cells["b symmetric50"]["t_mae"] == pytest.approx(0.05)


def test_verdict_guards_clean_and_markov_then_needs_a_higher_sum():
    base = _cells(a_clean=-0.003, a_markov=-0.001, a_mix=0.06)
    # More good overall, but clean masks damaged by 0.0046 more: refused.
    ok, why = compare_init.verdict(base, _cells(a_clean=-0.0076, a_markov=-0.001, a_mix=0.2))
    assert not ok and "a clean" in why
    # Guarded cells within 0.002, sum lower: refused.
    ok, why = compare_init.verdict(base, _cells(a_clean=-0.004, a_markov=-0.002, a_mix=0.05))
    assert not ok and "sum" in why
    # Guarded cells within 0.002, sum higher: replaces.
    ok, _ = compare_init.verdict(base, _cells(a_clean=-0.004, a_markov=-0.0015, a_mix=0.07))
    assert ok
    # A broken run (NaN anywhere) never replaces the incumbent.
    nan = float("nan")
    assert not compare_init.verdict(base, _cells(a_clean=nan, a_markov=-0.001, a_mix=0.2))[0]
    assert not compare_init.verdict(base, _cells(a_clean=-0.003, a_markov=-0.001, a_mix=nan))[0]


def test_merged_adds_earlier_rows_by_file_name_and_refuses_a_run_counted_twice(tmp_path):
    row = {"family": "a", "preset": "markov", "delta": -0.001, "pred": 0.8, "changed": 0.001}
    earlier = tmp_path / "earlier.json"
    earlier.write_text(
        json.dumps({"/elsewhere/old.pt": [{**row, "seed": 3}], "/x/new.pt": [{**row, "seed": 3}]})
    )
    rows = {"old.pt": [{**row, "seed": 0}], "runs/new.pt": [{**row, "seed": 0, "delta": 0.0}]}
    out = compare_init.merged(rows, [str(earlier)])
    assert [r["seed"] for r in out["old.pt"]] == [0, 3]
    assert [r["delta"] for r in out["runs/new.pt"]] == [0.0, -0.001]
    assert rows["old.pt"] == [{**row, "seed": 0}]  # the input is not changed
    with pytest.raises(ValueError, match="scored twice"):
        compare_init.merged(out, [str(earlier)])
    stranger = tmp_path / "stranger.json"
    stranger.write_text(json.dumps({"other.pt": [row]}))
    with pytest.raises(ValueError, match="other.pt is not one of"):
        compare_init.merged(rows, [str(stranger)])
