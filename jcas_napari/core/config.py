"""Model and loss configuration, loaded from ``models/<name>.yaml`` or any YAML path."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from jcas_napari.assets import models_dir
from jcas_napari.core.config_check import check_value

# Shipped configs live in the repository's models/ folder (installed with `pip -e`).
CONFIG_DIRS = (models_dir(),)


@dataclass
class ModelConfig:
    depth: int = 18
    width: int = 32
    aspp_dilations: tuple[int, ...] = (6, 12, 18, 24)
    embed_dims: tuple[int, int] = (32, 64)
    embed_dilations: tuple[int, ...] | None = None  # None: the same as aspp_dilations
    pretrained: str | None = None


@dataclass
class InputConfig:
    height: int = 128
    width: int = 160


@dataclass
class AffinityConfig:
    grid: tuple[int, int] = (16, 20)
    chunk: int = 1024


@dataclass
class LossWeights:
    seg2: float = 1.0
    seg1: float = 0.1
    aff1: float = 1.0
    aff2: float = 0.1
    vol: float = 0.0  # the paper's 0.5 is for t_init: paper; from an anchor start it biases T
    consistency: float = 0.01
    # False: stage 1 trains the class loss alone (the affinity branch waits for stage 2,
    # where T_A corrects its noisy targets). Better on our scene families, more harm on
    # another generator's clean masks, so off: benchmarks/RESULTS.md, "Why CE beats JCAS
    # on mixed noise".
    warmup_affinity: bool = True


@dataclass
class TrainConfig:
    """Optimisation schedule (SGD, momentum 0.9, wd 5e-4, poly 0.9, heads at 10x lr)."""

    epochs_warmup: int = 4  # stage 1: CE + affinity BCE on the noisy masks, T = I
    epochs_jcas: int = 6  # stage 2: JCAS with T_C and T_A
    # > 0: stage 2 gets more epochs when they would be fewer steps. Off: T_C and flips
    # gain, mixed noise loses (benchmarks/RESULTS.md, "round of the step floor")
    min_steps_jcas: int = 0
    # Stage 2 runs up to 3x longer when the stage-2 start T_C says the labels are heavily
    # flipped (core.steps.stretch_stage2); border and shape noise never trigger it
    stretch_stage2: bool = True
    batch_size: int = 4
    optimizer: str = "sgd"  # sgd (the paper's) or adam (faster from random init)
    lr: float = 0.005  # backbone lr; the paper's 1e-4 assumes ImageNet-initialised weights
    t_lr: float = 0.05  # T_C and T_A: their own optimiser and lr
    t_optimizer: str = "adam"  # adam (scale-free steps on W) or sgd (the paper's)
    t_init: str = "anchor"  # anchor: T_C estimated from the warm-up model; paper: W = -2
    val_fraction: float = 0.25  # fraction of sequences held out for model selection
    flip: bool = True
    steps_per_epoch: int | None = None  # None: one pass over the training frames


@dataclass
class Config:
    """Everything that defines a JCAS model and its losses."""

    name: str = "small"
    model: ModelConfig = field(default_factory=ModelConfig)
    input: InputConfig = field(default_factory=InputConfig)
    affinity: AffinityConfig = field(default_factory=AffinityConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict, source: str = "config") -> Config:
        """Build a config from plain data, checking every value's type and range.

        Raises ``ValueError`` naming ``source`` (the file) and the key, e.g.
        ``small.yaml: train.lr must be a number > 0, got 'abc'``.
        """
        if not isinstance(raw, dict):
            raise ValueError(
                f"{source}: a config must be a mapping of sections, got {type(raw).__name__}"
            )
        sections = {
            "model": ModelConfig,
            "input": InputConfig,
            "affinity": AffinityConfig,
            "loss": LossWeights,
            "train": TrainConfig,
        }
        unknown = set(raw) - set(sections) - {"name"}
        if unknown:
            raise ValueError(f"{source}: unknown section(s) {sorted(unknown, key=str)}")
        kwargs = {}
        for key, typ in sections.items():
            part = raw.get(key) or {}
            if not isinstance(part, dict):
                raise ValueError(
                    f"{source}: '{key}' must be a mapping of settings, got {type(part).__name__}"
                )
            names = {f.name for f in fields(typ)}
            bad = set(part) - names
            if bad:
                raise ValueError(f"{source}: unknown key(s) {sorted(bad, key=str)} in '{key}'")
            kwargs[key] = typ(**{k: check_value(source, key, k, v) for k, v in part.items()})
        name = raw.get("name", "custom")
        if not isinstance(name, str | int | float) or isinstance(name, bool):
            raise ValueError(f"{source}: name must be text, got {name!r}")
        return cls(name=str(name), **kwargs)


def available_configs() -> list[str]:
    """Names of the shipped configurations."""
    return sorted({p.stem for d in CONFIG_DIRS if d.is_dir() for p in d.glob("*.yaml")})


def load_config(name_or_path: str | os.PathLike) -> Config:
    """Load a shipped config by name (``small``, ``deeplab-r101``) or a YAML file path."""
    path = Path(name_or_path)
    if not path.suffix:
        for d in CONFIG_DIRS:
            if (d / f"{name_or_path}.yaml").exists():
                path = d / f"{name_or_path}.yaml"
                break
        else:
            raise ValueError(
                f"unknown config {str(name_or_path)!r}; choose from {available_configs()} "
                "or give a .yaml path"
            )
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read config ({exc})") from None
    return Config.from_dict(raw or {}, str(path))
