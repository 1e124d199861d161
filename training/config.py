"""Training run configuration: one YAML file says everything about a run.

Parsing is strict: an unknown key or a value of the wrong type stops the run before any
work, with a message naming the key (``fit.epochs: expected an integer, got 'ten'``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from tfship.config_schema import SchemaError, build
from training.errors import ConfigError


@dataclass(frozen=True)
class SplitConfig:
    train: float = 0.7
    val: float = 0.15
    test: float = 0.15

    def check(self, key: str) -> None:
        for name in ("train", "val", "test"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise ConfigError(f"{key}.{name}: must be between 0 and 1, got {value}")
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ConfigError(f"{key}: train + val + test must sum to 1, got {total:g}")


@dataclass(frozen=True)
class DataConfig:
    source: Literal["sklearn"] = "sklearn"
    dataset: Literal["digits"] = "digits"
    split: SplitConfig = field(default_factory=SplitConfig)


@dataclass(frozen=True)
class PreprocessingConfig:
    # normalization: (x - mean) / std with mean/std adapted on the train split only.
    # rescaling: x * scale (+ offset), fixed constants.
    scaling: Literal["normalization", "rescaling", "none"] = "normalization"
    rescale: float = 1.0 / 16.0
    offset: float = 0.0


@dataclass(frozen=True)
class ModelConfig:
    architecture: Literal["cnn"] = "cnn"
    conv_filters: list[int] = field(default_factory=lambda: [32, 64])
    kernel_size: int = 3
    dense_units: list[int] = field(default_factory=lambda: [64])
    activation: str = "relu"
    dropout: float = 0.25


@dataclass(frozen=True)
class EarlyStoppingConfig:
    monitor: str = "val_loss"
    patience: int = 8
    min_delta: float = 0.0


@dataclass(frozen=True)
class FitConfig:
    optimizer: Literal["adam", "sgd", "rmsprop"] = "adam"
    learning_rate: float = 1e-3
    batch_size: int = 32
    epochs: int = 60
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)


@dataclass(frozen=True)
class ExportConfig:
    onnx_opset: int = 17
    # ONNX Runtime vs TensorFlow on the whole test split; above this the run fails.
    parity_tolerance: float = 1e-4


@dataclass(frozen=True)
class TrainConfig:
    name: str
    task: Literal["classification"] = "classification"
    seed: int = 42
    data: DataConfig = field(default_factory=DataConfig)
    preprocessing: PreprocessingConfig = field(default_factory=PreprocessingConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check(config: TrainConfig) -> None:
    from tfship.repository import is_valid_model_name

    if not is_valid_model_name(config.name):
        raise ConfigError(
            f"name: {config.name!r} is not a valid model name "
            "(letters, digits, '_', '-', '.', starting with a letter or digit)"
        )
    config.data.split.check("data.split")
    positive_ints = {
        "fit.batch_size": config.fit.batch_size,
        "fit.epochs": config.fit.epochs,
        "model.kernel_size": config.model.kernel_size,
        "export.onnx_opset": config.export.onnx_opset,
    }
    for key, value in positive_ints.items():
        if value < 1:
            raise ConfigError(f"{key}: must be at least 1, got {value}")
    if config.fit.early_stopping.patience < 0:
        raise ConfigError("fit.early_stopping.patience: must be 0 or more")
    if not config.model.conv_filters or any(n < 1 for n in config.model.conv_filters):
        raise ConfigError("model.conv_filters: must be a non-empty list of positive integers")
    if any(n < 1 for n in config.model.dense_units):
        raise ConfigError("model.dense_units: every entry must be a positive integer")
    if not 0 <= config.model.dropout < 1:
        raise ConfigError(f"model.dropout: must be in [0, 1), got {config.model.dropout}")
    if config.fit.learning_rate <= 0:
        raise ConfigError("fit.learning_rate: must be positive")
    if config.export.parity_tolerance <= 0:
        raise ConfigError("export.parity_tolerance: must be positive")


def _apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply one ``dotted.key=value`` override; the value is parsed as YAML (so 3 is an int)."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. fit.epochs=5")
    key, text = assignment.split("=", 1)
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {part} is not a mapping")
        node = child
    node[parts[-1]] = yaml.safe_load(text)


def load_config(path: Path, overrides: list[str] | None = None) -> TrainConfig:
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
    for assignment in overrides or []:
        _apply_override(raw, assignment)
    try:
        config = build(TrainConfig, raw)
    except SchemaError as exc:
        raise ConfigError(str(exc)) from None
    _check(config)
    return config
