"""Types and ranges of every config value, checked when a config is read.

A wrong value used to surface deep inside training (``batch_size: 0`` as a
ZeroDivisionError, ``lr: "abc"`` as a TypeError in the optimiser); here it becomes a
``ValueError`` that names the file and the key, before any work starts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

# ResNet depths the model builds (core.model.LAYOUTS; not imported: model imports config).
DEPTHS = (18, 34, 50, 101)
MAX_SIDE = 8192  # input sizes above this do not fit any GPU's memory at batch size 1

Rule = tuple[str, Callable[[Any], Any]]  # (what a valid value is, normalise-or-raise)


class _Bad(Exception):
    """The value does not satisfy the rule (the caller adds file, key and rule)."""


def _whole(v: Any) -> int:
    # bool is an int subclass: `batch_size: true` must not read as 1.
    if isinstance(v, bool) or not isinstance(v, int):
        raise _Bad
    return v


def _real(v: Any) -> float:
    # PyYAML reads `1e-4` (no dot) as the string "1e-4": accept numeric text, so the
    # common spelling works, and refuse everything else ("abc", NaN, infinity, booleans).
    if isinstance(v, bool):
        raise _Bad
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            raise _Bad from None
    if not isinstance(v, int | float) or not math.isfinite(v):
        raise _Bad
    return float(v)


def whole(lo: int, hi: int | None = None, options: tuple[int, ...] = ()) -> Rule:
    what = (
        f"one of {list(options)}"
        if options
        else (f"a whole number in [{lo}, {hi}]" if hi is not None else f"a whole number >= {lo}")
    )

    def check(v: Any) -> int:
        v = _whole(v)
        if v < lo or (hi is not None and v > hi) or (options and v not in options):
            raise _Bad
        return v

    return what, check


def real(lo: float, *, above: bool = False, below: float | None = None) -> Rule:
    """A finite number >= lo (> lo when ``above``), and < ``below`` when given."""
    what = f"a number {'>' if above else '>='} {lo}" + (f" and < {below}" if below else "")

    def check(v: Any) -> float:
        v = _real(v)
        if v < lo or (above and v == lo) or (below is not None and v >= below):
            raise _Bad
        return v

    return what, check


def ints(count: int | None = None) -> Rule:
    """A list of positive whole numbers (exactly ``count`` of them when given)."""
    what = (
        f"a list of {count} positive whole numbers"
        if count
        else ("a list of positive whole numbers")
    )

    def check(v: Any) -> tuple[int, ...]:
        if not isinstance(v, list | tuple) or not v or (count and len(v) != count):
            raise _Bad
        out = tuple(_whole(x) for x in v)
        if min(out) < 1:
            raise _Bad
        return out

    return what, check


def choice(*options: str) -> Rule:
    def check(v: Any) -> str:
        if not isinstance(v, str) or v not in options:
            raise _Bad
        return v

    return f"one of {', '.join(options)}", check


def optional(rule: Rule) -> Rule:
    what, inner = rule
    return f"null or {what}", lambda v: None if v is None else inner(v)


def _text(v: Any) -> str:
    if not isinstance(v, str):
        raise _Bad
    return v


def _flag(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _Bad
    return v


RULES: dict[str, dict[str, Rule]] = {
    "model": {
        "depth": whole(1, options=DEPTHS),
        "width": whole(1),
        "aspp_dilations": ints(),
        "embed_dims": ints(2),
        "embed_dilations": optional(ints()),
        "pretrained": optional(("'imagenet' or a file path", _text)),
    },
    "input": {"height": whole(16, MAX_SIDE), "width": whole(16, MAX_SIDE)},
    "affinity": {"grid": ints(2), "chunk": whole(1)},
    "loss": {
        **{k: real(0) for k in ("seg2", "seg1", "aff1", "aff2", "vol", "consistency")},
        "warmup_affinity": ("true or false", _flag),
    },
    "train": {
        "epochs_warmup": whole(0),
        "epochs_jcas": whole(0),
        "min_steps_jcas": whole(0),
        "stretch_stage2": ("true or false", _flag),
        "batch_size": whole(1),
        "optimizer": choice("sgd", "adam"),
        "lr": real(0, above=True),
        "t_lr": real(0),
        "t_optimizer": choice("adam", "sgd"),
        "t_init": choice("anchor", "paper"),
        "val_fraction": real(0, below=1),
        "flip": ("true or false", _flag),
        "steps_per_epoch": optional(whole(1)),
    },
}


def check_value(source: str, section: str, key: str, value: Any) -> Any:
    """``value`` normalised (lists to tuples, numeric text to float), or ``ValueError``
    naming ``source``, ``section.key``, what is allowed and what was given."""
    what, check = RULES[section][key]
    try:
        return check(value)
    except _Bad:
        raise ValueError(f"{source}: {section}.{key} must be {what}, got {value!r}") from None
