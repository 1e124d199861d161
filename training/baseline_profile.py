"""The training baseline a server compares live traffic against (metadata's
``baseline_profile``).

Per input, from the train split's rows as loaded (before imputation, clipping and
oversampling: what clients send):

- numeric columns (a CSV column, feature ``value``; or each column of a 2-D feature
  matrix, features ``[0]``, ``[1]``...): quantile bin edges (deciles by default, duplicates
  merged) and the share of train rows in each bin, plus the missing (NaN/inf) rate. Bin
  ``i`` holds the values ``edges[i-1] < v <= edges[i]``; the first bin everything up to
  ``edges[0]``, the last everything above ``edges[-1]`` (``numpy.searchsorted(edges, v,
  side="left")``).
- categorical columns: the share of each value of the vocabulary, the missing rate, and the
  share of values outside the vocabulary (0 on the train split by construction).
- images and sequences (``[-1, H, W, C]``, ``[-1, steps, C]``): per channel, a histogram of
  intensities over ``INTENSITY_BINS`` equal bins between the train split's minimum and
  maximum.

And the model's answers on the test split: the share of each predicted class
(classification) or the quantile bins of the predictions (regression).
"""

from __future__ import annotations

from typing import Any

import numpy as np

QUANTILE_BINS = 10
INTENSITY_BINS = 16
FORMAT = 1


def _shares(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return [round(float(c / total), 6) for c in counts] if total else [0.0] * len(counts)


def numeric(values: np.ndarray, bins: int = QUANTILE_BINS) -> dict[str, Any]:
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    finite = flat[np.isfinite(flat)]
    missing = 1.0 - len(finite) / len(flat) if len(flat) else 0.0
    if not len(finite):
        return {"kind": "numeric", "edges": [], "shares": [], "missing_rate": round(missing, 6)}
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, finite, side="left"), minlength=len(edges) + 1)
    return {
        "kind": "numeric",
        "edges": [float(f"{e:.8g}") for e in edges],
        "shares": _shares(counts),
        "missing_rate": round(missing, 6),
    }


def categorical(values: np.ndarray) -> dict[str, Any]:
    present = [v for v in values.tolist() if v is not None]
    missing = 1.0 - len(present) / len(values) if len(values) else 0.0
    vocabulary, counts = np.unique(np.asarray([str(v) for v in present]), return_counts=True)
    return {
        "kind": "categorical",
        "values": dict(zip(vocabulary.tolist(), _shares(counts), strict=True)),
        "missing_rate": round(missing, 6),
        "unseen_rate": 0.0,
    }


def intensities(values: np.ndarray, bins: int = INTENSITY_BINS) -> dict[str, Any]:
    """Per channel (the last axis) histograms over the train split's range."""
    data = np.asarray(values, dtype=np.float64)
    channels = data.reshape(-1, data.shape[-1])
    result = []
    for channel in channels.T:
        finite = channel[np.isfinite(channel)]
        low, high = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 0.0)
        counts, edges = np.histogram(
            finite, bins=bins, range=(low, high if high > low else low + 1)
        )
        result.append({"edges": [float(e) for e in edges], "shares": _shares(counts)})
    return {"kind": "intensity", "channels": result}


def input_profile(values: np.ndarray) -> dict[str, Any]:
    """One input's profile; a 2-D numeric input is a matrix of named columns."""
    if values.dtype == object:
        return {"features": {"value": categorical(values)}}
    if values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1):
        return {"features": {"value": numeric(values)}}
    if values.ndim == 2:
        return {"features": {f"[{i}]": numeric(values[:, i]) for i in range(values.shape[1])}}
    return {"features": {"intensity": intensities(values)}}


def predictions_profile(
    task: str, outputs: np.ndarray, class_names: list[str], split: str = "test"
) -> dict[str, Any]:
    if task == "classification":
        predicted = np.asarray(outputs).argmax(axis=1)
        counts = np.bincount(predicted, minlength=len(class_names) or outputs.shape[1])
        names = class_names or [str(i) for i in range(len(counts))]
        return {
            "kind": "classes",
            "split": split,
            "shares": dict(zip(names, _shares(counts), strict=True)),
        }
    # Regression, or an imported model without class names: its first output's values.
    return {"split": split, **numeric(np.asarray(outputs).reshape(-1))}


def profile(
    x: dict[str, np.ndarray],
    task: str,
    outputs: np.ndarray,
    class_names: list[str],
    split: str = "train",
    predictions_split: str = "test",
) -> dict[str, Any]:
    """``x``: the rows the inputs are profiled on; ``outputs``: the model's answers on the
    rows the predictions are profiled on (a training run: train and test splits)."""
    return {
        "format": FORMAT,
        "split": split,
        "rows": len(next(iter(x.values()))),
        "inputs": {name: input_profile(values) for name, values in x.items()},
        "predictions": predictions_profile(task, outputs, class_names, predictions_split),
    }
