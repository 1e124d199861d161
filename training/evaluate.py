"""Evaluation stage: metrics of predicted class probabilities on the held-out test split."""

from __future__ import annotations

import numpy as np


def classification_metrics(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    predicted = probabilities.argmax(axis=1)
    picked = probabilities[np.arange(len(labels)), labels]
    return {
        "accuracy": float((predicted == labels).mean()),
        "loss": float(-np.log(np.clip(picked, 1e-7, 1.0)).mean()),
        "rows": len(labels),
    }
