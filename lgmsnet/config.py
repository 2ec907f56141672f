"""Training configuration: YAML → typed dataclasses, unknown keys rejected with the list of valid ones.

A config file has up to four sections; every field has a default, so an empty file is valid::

    model: {name: lgmsnet, in_channels: 3, num_classes: 1, kwargs: {}}
    data:  {image_size: 256, recipe: reference, split_seed: 0, ratios: [0.7, 0.1, 0.2], cache: true, ...}
    optim: {lr: 0.01, momentum: 0.9, weight_decay: 1.0e-4, poly_power: 0.9}
    train: {epochs: 300, batch_size: 8, seed: 0, device: cpu, amp: true, channels_last: true, ...}

The resolved config (file + command-line overrides) is written as ``config.yaml`` next to every run.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

import yaml

__all__ = [
    "Config",
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainConfig",
    "config_from_dict",
    "flatten_dict",
    "load_config",
    "save_config",
]


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the key and the valid choices."""


@dataclass
class ModelConfig:
    """Which network to build (see ``lgmsnet.list_models()``)."""

    name: str = "lgmsnet"
    in_channels: int = 3
    num_classes: int = 1
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    """Where the data comes from and how it is prepared.

    ``manifest``: a split manifest (``lgmsnet data split``); when empty, a group-aware split is made with
    ``split_seed``/``ratios``/``hash_threshold`` and written to the run folder. ``cache``: resize once to
    ``image_size`` into ``cache_dir`` (default ``$LGMSNET_CACHE`` or ``~/.cache/lgmsnet``).
    """

    path: str = ""
    manifest: str = ""
    image_size: int = 256
    recipe: str = "reference"
    mask_threshold: int = 127
    split_seed: int = 0
    ratios: list[float] = field(default_factory=lambda: [0.7, 0.1, 0.2])
    hash_threshold: int = 10
    cache: bool = True
    cache_dir: str = ""
    num_workers: int = 0


@dataclass
class OptimConfig:
    """SGD with a per-iteration poly schedule: ``lr = base · (1 − it/max_it)^power`` (the reference recipe)."""

    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False
    poly_power: float = 0.9
    warmup_iters: int = 0


@dataclass
class TrainConfig:
    """The loop: epochs, batch, seed, device and numerics.

    ``max_steps_per_epoch`` caps an epoch (0 = the whole training split), for smoke runs. ``amp`` applies on CUDA
    only (bfloat16 autocast on CPU is slower than float32 here). ``channels_last`` applies to 2D models.
    """

    epochs: int = 300
    batch_size: int = 8
    seed: int = 0
    device: str = "cpu"
    amp: bool = True
    channels_last: bool = True
    threads: int = 0
    bce_weight: float = 0.5
    val_every: int = 1
    val_batch_size: int = 8
    max_steps_per_epoch: int = 0
    log_every: int = 20
    test_after_training: bool = True


@dataclass
class Config:
    """The whole training configuration."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON/``torch.load(weights_only=True)`` friendly)."""
        return dataclasses.asdict(self)


T = TypeVar("T")


def _coerce(value: Any, typ: Any, where: str) -> Any:
    origin = getattr(typ, "__origin__", None)
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():  # JSON/protobuf transports (KFP) turn ints into floats
            return int(value)
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if typ is str:
        if value is None:
            return ""
        if isinstance(value, (str, os.PathLike)):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typ.__args__
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    return value


def _build(cls: type[T], data: Any, where: str) -> T:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of settings, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(repr(k) for k in unknown)} in {where}; valid keys: {', '.join(names)}"
        )
    kwargs = {}
    for name in names:
        if name in data:
            typ = hints[name]
            if dataclasses.is_dataclass(typ):
                kwargs[name] = _build(typ, data[name], f"{where}.{name}" if where != "config" else name)
            else:
                kwargs[name] = _coerce(data[name], typ, f"{where}.{name}" if where != "config" else name)
    return cls(**kwargs)


def _validate(cfg: Config) -> Config:
    from lgmsnet.data.transforms import RECIPES
    from lgmsnet.models.registry import list_models

    if cfg.model.name not in list_models():
        raise ConfigError(f"model.name {cfg.model.name!r} is unknown; valid: {', '.join(list_models())}")
    if cfg.data.recipe not in RECIPES:
        raise ConfigError(f"data.recipe {cfg.data.recipe!r} is unknown; valid: {', '.join(RECIPES)}")
    if cfg.data.image_size <= 0 or cfg.data.image_size % 32:
        raise ConfigError(f"data.image_size must be a positive multiple of 32, got {cfg.data.image_size}")
    if len(cfg.data.ratios) != 3 or abs(sum(cfg.data.ratios) - 1) > 1e-6 or min(cfg.data.ratios) < 0:
        raise ConfigError(f"data.ratios must be 3 non-negative numbers (train, val, test) summing to 1, got {cfg.data.ratios}")
    if cfg.data.ratios[1] <= 0:
        raise ConfigError("data.ratios: the validation share must be > 0 (it picks the best checkpoint; the test split never does)")
    for key in ("epochs", "batch_size", "val_every", "val_batch_size"):
        if getattr(cfg.train, key) < 1:
            raise ConfigError(f"train.{key} must be >= 1, got {getattr(cfg.train, key)}")
    if cfg.optim.lr <= 0:
        raise ConfigError(f"optim.lr must be > 0, got {cfg.optim.lr}")
    dev = cfg.train.device
    if not (dev == "cpu" or dev == "cuda" or dev.startswith("cuda:")):
        raise ConfigError(f"train.device must be cpu, cuda or cuda:N, got {dev!r}")
    return cfg


def config_from_dict(data: dict[str, Any] | None) -> Config:
    """Build and validate a :class:`Config` from a nested dict (unknown keys raise :class:`ConfigError`)."""
    return _validate(_build(Config, data or {}, "config"))


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {p!r} is not a section")
    node[parts[-1]] = value


def load_config(path: str | os.PathLike[str] | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read a YAML config (or start from the defaults) and apply ``{"section.key": value}`` overrides.

    Raises:
        ConfigError: unreadable YAML, unknown keys, wrong types or invalid values; the message names the file.
    """
    data: dict[str, Any] = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            loaded = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {p} is not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping with sections model/data/optim/train")
        data = loaded or {}
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(data, key, value)
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}" if path else str(exc)) from None


def flatten_dict(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}`` (for run parameters in trackers)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_dict(value, name + "."))
        else:
            out[name] = value
    return out


def save_config(cfg: Config, path: str | os.PathLike[str]) -> Path:
    """Write the resolved config as YAML, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    os.replace(tmp, path)
    return path
