"""Files shipped inside the package: model configs and the small synthetic checkpoint.

They live in ``jcas_napari/models/`` (the repository's top-level ``models/`` is a link to
it), so a wheel installed without ``-e`` finds them through ``importlib.resources``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

SHIPPED_NAME = "jcas-small-synthetic.pt"


def models_dir() -> Path:
    """The folder of shipped configs and checkpoints."""
    return Path(str(files("jcas_napari") / "models"))


def shipped_model() -> Path:
    """The shipped checkpoint (config ``small``), the default starting point."""
    return models_dir() / SHIPPED_NAME


def resolve_init(init: str | Path | None, config_name: str) -> Path | None:
    """What a training run starts from. ``None`` or ``"shipped"``: the shipped model when
    the config is ``small`` (its architecture), else the config's own initialisation;
    ``"none"``: the config's own initialisation; anything else: that checkpoint."""
    if init is None or str(init) == "shipped":
        return shipped_model() if config_name == "small" else None
    if str(init).lower() == "none":
        return None
    return Path(init)
