"""Looking inside a trained model: per-layer weight statistics and permutation importance.

Weights: for every weight tensor of every layer (kernels, biases; not the preprocessing
layers' statistics), its size, L2 norm, mean |w|, standard deviation, the fraction of
exact zeros (pruning's effect) and of near-zeros (|w| < 1 % of the tensor's largest), and a
histogram: which parts carry weight, which are dead.

Permutation importance (tabular models): on the test split, one column at a time is
shuffled and the drop of the gate's metric measured, ``repeats`` times with the run's seed;
a feature the model ignores drops nothing. Model-agnostic and computed on held-out rows,
so it says what this model uses, not what the data holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

HISTOGRAM_BINS = 12
NEAR_ZERO = 0.01  # of the tensor's largest |w|


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def weight_statistics(layers: list[Any]) -> list[dict[str, Any]]:
    """One entry per trainable weight tensor: ``layers`` are Keras layers."""
    described = []
    for layer in layers:
        for variable in layer.trainable_weights:
            values = np.asarray(variable.numpy(), dtype=np.float64).reshape(-1)
            if not values.size:
                continue
            largest = float(np.abs(values).max())
            counts, edges = np.histogram(values, bins=HISTOGRAM_BINS)
            described.append(
                {
                    "layer": layer.name,
                    "weight": variable.path.rsplit("/", 1)[-1],
                    "shape": list(variable.shape),
                    "size": int(values.size),
                    "l2_norm": _round(float(np.linalg.norm(values))),
                    "mean_abs": _round(float(np.abs(values).mean())),
                    "std": _round(float(values.std())),
                    "zeros": _round(float((values == 0).mean())),
                    "near_zero": _round(float((np.abs(values) < NEAR_ZERO * largest).mean()))
                    if largest
                    else 1.0,
                    "histogram": {
                        "counts": counts.tolist(),
                        "edges": [_round(float(e)) for e in edges],
                    },
                }
            )
    return described


def permutation_importance(
    score: Callable[[dict[str, np.ndarray]], float],
    x: dict[str, np.ndarray],
    higher_is_better: bool,
    repeats: int,
    seed: int,
) -> dict[str, dict[str, float]]:
    """Feature -> the metric's mean and std drop when that feature's column is shuffled.

    ``score`` maps inputs to the metric on the fixed labels; a positive drop means the
    model got worse without the feature.
    """
    rng = np.random.default_rng(seed)
    baseline = score(x)
    result = {}
    for name in x:
        drops = []
        for _ in range(repeats):
            shuffled = dict(x)
            shuffled[name] = x[name][rng.permutation(len(x[name]))]
            change = score(shuffled) - baseline
            drops.append(-change if higher_is_better else change)
        result[name] = {
            "mean_drop": _round(float(np.mean(drops))),
            "std": _round(float(np.std(drops))),
        }
    return dict(sorted(result.items(), key=lambda item: -item[1]["mean_drop"]))
