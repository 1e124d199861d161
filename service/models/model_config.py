"""Which models to serve, and how: from a model config file, or by discovering the repository.

A config file (YAML or JSON) lists models explicitly::

    models:
      - name: digits
        base_path: models/digits          # default: <model dir>/<name>
        runtime: onnx                      # default: the server's --runtime
        version_policy: {latest: 2}        # or {all: true} or {specific: [1, 3]}
        labels: {stable: 1, canary: 2}     # /v1/models/digits/labels/stable
        batching:                          # dynamic batching; off when absent
          max_batch_size: 32
          batch_timeout_micros: 1000
          max_enqueued_batches: 16
          allowed_batch_sizes: [8, 16, 32]

Without one, every folder of the repository is a model served with the latest version.
"""

from __future__ import annotations

import itertools
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
class BatchingConfig:
    """TF Serving's batching parameters, by the same names (see service/models/batching.py)."""

    max_batch_size: int = 32
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 16
    allowed_batch_sizes: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class ModelConfig:
    name: str
    base_path: str = ""
    runtime: str = ""
    version_policy: VersionPolicy = field(default_factory=VersionPolicy)
    labels: dict[str, int] = field(default_factory=dict)
    # An ONNX variant published beside model.onnx, e.g. int8 -> model.int8.onnx.
    variant: str = ""
    batching: BatchingConfig | None = None


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
    batching: BatchingConfig | None = None


# On a GPU a model's cost barely grows with the rows of a call, so concurrent requests are
# grouped by default there: up to 64 rows, waiting at most 1 ms for more. A model's own
# `batching:` replaces this (`max_batch_size: 1` turns it off).
GPU_BATCHING = BatchingConfig(max_batch_size=64, batch_timeout_micros=1000)


def default_batching(settings: ServiceSettings) -> BatchingConfig | None:
    return GPU_BATCHING if settings.device == "cuda" else None


# Beyond these a typo is likelier than a wish: a 10 s batch timeout, a million-row batch.
_MAX_BATCH_SIZE = 65536
_MAX_TIMEOUT_MICROS = 1_000_000


def _check_batching(batching: BatchingConfig, where: str) -> None:
    if not 1 <= batching.max_batch_size <= _MAX_BATCH_SIZE:
        raise SettingsError(f"{where}.max_batch_size: must be 1..{_MAX_BATCH_SIZE}")
    if not 0 <= batching.batch_timeout_micros <= _MAX_TIMEOUT_MICROS:
        raise SettingsError(
            f"{where}.batch_timeout_micros: must be 0..{_MAX_TIMEOUT_MICROS} (one second)"
        )
    if batching.max_enqueued_batches < 1:
        raise SettingsError(f"{where}.max_enqueued_batches: must be at least 1")
    sizes = batching.allowed_batch_sizes
    if sizes:
        if any(b <= a for a, b in itertools.pairwise(sizes)) or sizes[0] < 1:
            raise SettingsError(
                f"{where}.allowed_batch_sizes: must be positive and increasing, got {sizes}"
            )
        # TF Serving's rule: a batch is padded up to an allowed size, so the largest batch
        # must be one of them.
        if sizes[-1] != batching.max_batch_size:
            raise SettingsError(
                f"{where}.allowed_batch_sizes: the last size ({sizes[-1]}) must equal "
                f"max_batch_size ({batching.max_batch_size})"
            )


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
    if config.batching is not None:
        _check_batching(config.batching, f"{where}.batching")
    base = Path(config.base_path) if config.base_path else settings.model_dir / config.name
    return ServedModelSpec(
        config.name,
        base,
        runtime,
        policy,
        dict(config.labels),
        config.variant,
        config.batching if config.batching is not None else default_batching(settings),
    )


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
            name,
            settings.model_dir / name,
            settings.runtime_for(name),
            VersionPolicy(),
            {},
            batching=default_batching(settings),
        )
        for name, versions in list_models(settings.model_dir).items()
        if versions
    ]
