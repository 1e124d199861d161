"""Quality gate (model blessing): publish only a model good enough, and no worse than the
newest published version by more than the tolerance. ``--force`` publishes anyway, and the
decision with its numbers is printed and recorded either way."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tfship.repository import RepositoryError, list_versions, read_metadata, version_folder
from training.config import LOWER_IS_BETTER, TrainConfig


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    forced: bool
    metric: str
    value: float
    threshold: float | None
    baseline_version: int | None
    baseline_value: float | None
    tolerance: float
    message: str

    @property
    def publish(self) -> bool:
        return self.passed or self.forced

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "publish": self.publish}


def newest_metric(model_root: Path, metric: str) -> tuple[int | None, float | None]:
    """The newest readable version and its test metric (ONNX's, else SavedModel's)."""
    try:
        versions = list_versions(model_root)
    except RepositoryError:
        return None, None
    for version in reversed(versions):
        try:
            metrics = read_metadata(version_folder(model_root, version)).metrics
        except RepositoryError:
            continue
        for artifact in ("onnx", "savedmodel"):
            value = metrics.get(artifact, {}).get(metric)
            if isinstance(value, int | float):
                return version, float(value)
        return version, None
    return None, None


def decide(config: TrainConfig, value: float, model_root: Path, force: bool) -> GateDecision:
    metric = config.gate_metric()
    lower = metric in LOWER_IS_BETTER
    gate = config.gate
    problems = []
    threshold = gate.threshold
    if threshold is not None and ((value > threshold) if lower else (value < threshold)):
        relation = "above" if lower else "below"
        problems.append(f"{metric} {value:.4f} is {relation} the threshold {threshold:g}")
    baseline_version, baseline = newest_metric(model_root, metric)
    if baseline is not None:
        worse = value - baseline if lower else baseline - value
        if worse > gate.tolerance:
            problems.append(
                f"{metric} {value:.4f} is worse than version {baseline_version}'s "
                f"{baseline:.4f} by {worse:.4f} (tolerance {gate.tolerance:g})"
            )
    if problems:
        verdict = "forced through (--force): " if force else "refused: "
        message = verdict + "; ".join(problems)
    else:
        against = [f"threshold {gate.threshold:g}"] if gate.threshold is not None else []
        if baseline is not None:
            against.append(f"version {baseline_version}'s {baseline:.4f} ± {gate.tolerance:g}")
        message = f"passed: test {metric} {value:.4f}" + (
            f" against {', '.join(against)}" if against else " (no threshold, no earlier version)"
        )
    return GateDecision(
        passed=not problems,
        forced=force and bool(problems),
        metric=metric,
        value=value,
        threshold=gate.threshold,
        baseline_version=baseline_version,
        baseline_value=baseline,
        tolerance=gate.tolerance,
        message=message,
    )
