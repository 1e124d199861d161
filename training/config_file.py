"""Reading a training config: the YAML file, ``--set KEY=VALUE`` overrides, parsing into
``TrainConfig`` (config.py) and the checks across keys (config_checks.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tfship.config_schema import SchemaError, build
from training.config import TrainConfig
from training.config_checks import check_config
from training.errors import ConfigError


def set_key(raw: dict[str, Any], key: str, value: Any, where: str) -> None:
    """Set ``dotted.key`` in a parsed config, creating mappings on the way; ``where``
    starts the message if a part of the path is not a mapping."""
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{where}: {part} is not a mapping")
        node = child
    node[parts[-1]] = value


def _apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply one ``dotted.key=value`` override; the value is parsed as YAML (so 3 is an int)."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. fit.epochs=5")
    key, text = assignment.split("=", 1)
    set_key(raw, key, yaml.safe_load(text), f"--set {key}")


def parse_config(raw: Any, base_dir: Path, source: str = "config") -> TrainConfig:
    """A checked TrainConfig from an already parsed mapping."""
    if raw is None:
        raise ConfigError(f"{source} is empty")
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: top level must be a mapping")
    try:
        config = build(TrainConfig, {**raw, "base_dir": str(base_dir)})
    except SchemaError as exc:
        raise ConfigError(str(exc)) from None
    check_config(config)
    return config


def read_raw_config(path: Path, overrides: list[str] | None = None) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if raw is None:
        raise ConfigError(f"{path} is empty")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    if "base_dir" in raw:
        raise ConfigError("base_dir: unknown key (it is set from the config file's location)")
    for assignment in overrides or []:
        _apply_override(raw, assignment)
    return raw


def load_config(path: Path, overrides: list[str] | None = None) -> TrainConfig:
    raw = read_raw_config(path, overrides)
    return parse_config(raw, path.resolve().parent, str(path))
