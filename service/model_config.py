"""Which models to serve, and how: from a model config file, or by discovering the repository.

A config file (YAML or JSON) lists models explicitly::

    models:
      - name: digits
        base_path: models/digits          # default: <model dir>/<name>
        runtime: onnx                      # default: the server's --runtime
        version_policy: {latest: 2}        # or {all: true} or {specific: [1, 3]}
        labels: {stable: 1, canary: 2}     # /v1/models/digits/labels/stable

Without one, every folder of the repository is a model served with the latest version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from service.settings import RUNTIMES, ServiceSettings, SettingsError
from tfship.config_schema import SchemaError, build
from tfship.repository import is_valid_model_name, is_valid_variant, list_models


@dataclass(frozen=True)
class VersionPolicy:
    latest: int | None = None
    all: bool = False
    specific: list[int] | None = None

    def select(self, on_disk: list[int]) -> list[int]:
        """The versions to serve, of those published."""
        if self.all:
            return list(on_disk)
        if self.specific is not None:
            return [v for v in on_disk if v in self.specific]
        return on_disk[-(self.latest or 1) :]

    def describe(self) -> str:
        if self.all:
            return "all"
        if self.specific is not None:
            return "specific " + ",".join(str(v) for v in self.specific)
        return f"latest {self.latest or 1}"


@dataclass(frozen=True)
class ModelConfig:
    name: str
    base_path: str = ""
    runtime: str = ""
    version_policy: VersionPolicy = field(default_factory=VersionPolicy)
    labels: dict[str, int] = field(default_factory=dict)
    # An ONNX variant published beside model.onnx, e.g. int8 -> model.int8.onnx.
    variant: str = ""


@dataclass(frozen=True)
class ModelConfigFile:
    models: list[ModelConfig]


@dataclass(frozen=True)
class ServedModelSpec:
    """One model the registry manages, with every default resolved."""

    name: str
    base_path: Path
    runtime: str
    policy: VersionPolicy
    labels: dict[str, int]
    variant: str = ""


def _check(config: ModelConfig, index: int, settings: ServiceSettings) -> ServedModelSpec:
    where = f"models[{index}]"
    if not is_valid_model_name(config.name):
        raise SettingsError(f"{where}.name: {config.name!r} is not a valid model name")
    runtime = config.runtime or settings.runtime_for(config.name)
    if runtime not in RUNTIMES:
        raise SettingsError(
            f"{where}.runtime: expected one of {', '.join(RUNTIMES)}, got {runtime!r}"
        )
    if config.variant and not is_valid_variant(config.variant):
        raise SettingsError(
            f"{where}.variant: {config.variant!r} is not a variant name (e.g. int8)"
        )
    if config.variant and runtime != "onnx":
        raise SettingsError(
            f"{where}.variant: variants are ONNX files (model.<variant>.onnx); the runtime "
            f"here is {runtime}"
        )
    policy = config.version_policy
    chosen = sum([policy.latest is not None, policy.all, policy.specific is not None])
    if chosen > 1:
        raise SettingsError(f"{where}.version_policy: choose one of latest, all, specific")
    if policy.latest is not None and policy.latest < 1:
        raise SettingsError(f"{where}.version_policy.latest: must be at least 1")
    if policy.specific is not None and (not policy.specific or min(policy.specific) < 1):
        raise SettingsError(f"{where}.version_policy.specific: must list positive versions")
    for label, version in config.labels.items():
        if version < 1:
            raise SettingsError(f"{where}.labels.{label}: must be a positive version")
    base = Path(config.base_path) if config.base_path else settings.model_dir / config.name
    return ServedModelSpec(config.name, base, runtime, policy, dict(config.labels), config.variant)


def load_model_config(path: Path, settings: ServiceSettings) -> list[ServedModelSpec]:
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SettingsError(f"cannot read model config {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"model config {path} is not valid YAML/JSON: {exc}") from None
    try:
        parsed = build(ModelConfigFile, raw)
    except SchemaError as exc:
        raise SettingsError(f"model config {path}: {exc}") from None
    specs = [_check(config, i, settings) for i, config in enumerate(parsed.models)]
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SettingsError(f"model config {path}: model {duplicates[0]!r} is listed twice")
    if not specs:
        raise SettingsError(f"model config {path}: 'models' is empty")
    return specs


def discover(settings: ServiceSettings) -> list[ServedModelSpec]:
    """Every model folder of the repository, newest version only (raises RepositoryError)."""
    return [
        ServedModelSpec(
            name, settings.model_dir / name, settings.runtime_for(name), VersionPolicy(), {}
        )
        for name, versions in list_models(settings.model_dir).items()
        if versions
    ]
