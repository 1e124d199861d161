"""Population stability index (PSI) of the server's window against the baseline.

PSI = sum over bins of (observed - expected) * ln(observed / expected), shares floored at
``FLOOR`` so an empty bin does not divide by zero. Chosen over the Jensen-Shannon distance
because its scale is the one model-risk teams already read (below 0.1 stable, 0.1-0.25 a
moderate shift, above 0.25 a major one) and because an unseen category, expected at 0,
weighs heavily instead of being capped. Its weakness, shared by every binned distance: on
a small window sampling noise alone gives about (bins - 1) / rows, so the window rows are
exported beside every score.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from service.drift.window import Block

FLOOR = 1e-4
# The level docs/serving.md and the alert in k8s/monitoring/ use (see there for why).
THRESHOLD = 0.25
# Feature series exported per input (the highest scores): bounds the label values of
# tfship_feature_drift_score whatever the width of an input.
TOP_FEATURES = 10


def psi(expected: np.ndarray, counts: np.ndarray) -> float:
    total = counts.sum()
    if total <= 0:
        return 0.0
    observed = np.maximum(counts / total, FLOOR)
    wanted = np.maximum(expected, FLOOR)
    return float(np.sum((observed - wanted) * np.log(observed / wanted)))


def window(blocks: Iterable[Block], rows: int) -> tuple[int, np.ndarray | None]:
    """The newest blocks (of all workers) until they hold ``rows`` rows: their row count
    and summed counts."""
    total_rows, total = 0, None
    for block in sorted(blocks, key=lambda b: b.updated, reverse=True):
        if total_rows >= rows:
            break
        total = block.counts.copy() if total is None else total + block.counts
        total_rows += block.rows
    return total_rows, total


@dataclass(frozen=True)
class FeatureScore:
    input: str
    feature: str
    score: float
    values: int  # values counted (rows, or rows x pixels for an image channel)
    missing_share: float
    unseen_share: float | None  # categorical features only


@dataclass
class VersionScores:
    model: str
    version: int
    rows: int
    features: list[FeatureScore] = field(default_factory=list)
    inputs: dict[str, float] = field(default_factory=dict)
    predictions: float | None = None

    def features_of(self, input_name: str) -> list[FeatureScore]:
        """One input's features, highest score first."""
        return sorted((f for f in self.features if f.input == input_name), key=lambda f: -f.score)

    def to_json(self) -> dict:
        return {
            "model": self.model,
            "version": self.version,
            "window_rows": self.rows,
            "inputs": {
                name: {
                    "score": round(score, 6),
                    "features": [
                        {
                            "feature": f.feature,
                            "score": round(f.score, 6),
                            "values": f.values,
                            "missing_share": round(f.missing_share, 6),
                            **(
                                {"unseen_share": round(f.unseen_share, 6)}
                                if f.unseen_share is not None
                                else {}
                            ),
                        }
                        for f in self.features_of(name)
                    ],
                }
                for name, score in self.inputs.items()
            },
            "predictions": None if self.predictions is None else round(self.predictions, 6),
        }


@dataclass(frozen=True)
class Layout:
    """What the slots of a version's count vector are (reference.Feature, less the rules
    that fill them): enough to score counts read from another worker."""

    features: Sequence[tuple[str, str, int, int, bool]]  # input, name, start, stop, unseen slot
    expected: np.ndarray


def score(model: str, version: int, layout: Layout, rows: int, counts: np.ndarray) -> VersionScores:
    """Each feature's PSI; an input's score is the mean of its features' (the largest
    would grow with an input's width under no drift at all, as each feature adds its own
    noise); the predictions' apart."""
    result = VersionScores(model, version, rows)
    per_input: dict[str, list[float]] = {}
    for input_name, name, start, stop, has_unseen in layout.features:
        part = counts[start:stop]
        value = psi(layout.expected[start:stop], part)
        if not input_name:
            result.predictions = value
            continue
        total = max(int(part.sum()), 1)
        result.features.append(
            FeatureScore(
                input_name,
                name,
                value,
                int(part.sum()),
                float(part[-1] / total),
                float(part[-2] / total) if has_unseen else None,
            )
        )
        per_input.setdefault(input_name, []).append(value)
    result.inputs = {name: float(np.mean(values)) for name, values in per_input.items()}
    return result
