"""Evaluation stage: test-split metrics for the task, from a model's outputs.

Classification: accuracy, log loss, precision/recall/F1 (macro and per class), the
confusion matrix, ROC AUC when there are two classes. Regression: MSE, RMSE, MAE, R².
"""

from __future__ import annotations

from typing import Any

import numpy as np


def classification_metrics(
    probabilities: np.ndarray, labels: np.ndarray, class_names: list[str] | None = None
) -> dict[str, Any]:
    from sklearn import metrics

    predicted = probabilities.argmax(axis=1)
    classes = list(range(probabilities.shape[1]))
    names = class_names or [str(c) for c in classes]
    picked = probabilities[np.arange(len(labels)), labels]
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        labels, predicted, labels=classes, zero_division=0
    )
    result: dict[str, Any] = {
        "accuracy": float((predicted == labels).mean()),
        "loss": float(-np.log(np.clip(picked, 1e-7, 1.0)).mean()),
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "f1_macro": float(f1.mean()),
        "rows": len(labels),
        "per_class": {
            name: {
                "precision": float(p),
                "recall": float(r),
                "f1": float(f),
                "support": int(s),
            }
            for name, p, r, f, s in zip(names, precision, recall, f1, support, strict=True)
        },
        "confusion_matrix": metrics.confusion_matrix(labels, predicted, labels=classes).tolist(),
    }
    if len(classes) == 2 and len(np.unique(labels)) == 2:
        result["roc_auc"] = float(metrics.roc_auc_score(labels, probabilities[:, 1]))
    return result


def regression_metrics(predictions: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
    predicted = np.asarray(predictions, dtype=np.float64).reshape(-1)
    actual = np.asarray(targets, dtype=np.float64).reshape(-1)
    error = predicted - actual
    mse = float(np.mean(error**2))
    total = float(np.sum((actual - actual.mean()) ** 2))
    return {
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": float(np.mean(np.abs(error))),
        "r2": 1.0 - float(np.sum(error**2)) / total if total > 0 else 0.0,
        "rows": len(actual),
    }


def task_metrics(
    task: str, outputs: np.ndarray, labels: np.ndarray, class_names: list[str] | None = None
) -> dict[str, Any]:
    if task == "classification":
        return classification_metrics(outputs, labels, class_names)
    return regression_metrics(outputs, labels)


def headline(metrics: dict[str, Any]) -> dict[str, float]:
    """The scalar metrics only (no per-class tables), for summaries and variant records."""
    return {k: v for k, v in metrics.items() if isinstance(v, int | float)}
