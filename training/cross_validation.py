"""k-fold cross-validation: how much a test metric would move with another split.

On a small data set one split's test metric is noise. With ``cross_validation: {folds:
K}`` the run first trains K models, fold k held out (data.fold_splits), each built, fitted
and scored on its held-out fold exactly as the real run is, and reports the mean and
standard deviation of every metric; then it trains and publishes the final model as
usual. Each fold keeps its logs in its own folder under the run (``cv/fold-<k>``).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np

from training.config import TrainConfig
from training.data import Splits, fold_splits
from training.run_folder import RunFolder
from training.stages import say


def summarize(per_fold: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Metric -> mean and standard deviation (n - 1) over the folds, for every metric every
    fold has."""
    names = [k for k in per_fold[0] if all(k in fold for fold in per_fold)]
    summary = {}
    for name in names:
        values = np.array([fold[name] for fold in per_fold], dtype=np.float64)
        summary[name] = {
            "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        }
    return summary


def cross_validate(config: TrainConfig, splits: Splits, run: RunFolder) -> dict[str, Any]:
    """Train and score one model per fold; metadata.json's ``cross_validation``."""
    import keras

    from training import evaluate, fit, stages

    folds = config.cross_validation.folds
    started = time.monotonic()
    metric = config.gate_metric()
    per_fold: list[dict[str, float]] = []
    rows = []
    for index, fold in enumerate(fold_splits(splits, config, folds), start=1):
        # Each fold's model from a clean slate: no graphs or names of the last one kept
        # (memory, and TensorFlow's retracing warnings for K models in one process).
        keras.backend.clear_session()
        fold_run = RunFolder(run.root / "cv" / f"fold-{index}", f"{run.run_id}-fold-{index}", False)
        # No TensorBoard per fold: the final fit's logs are the ones to look at.
        fold_config = replace(config, fit=replace(config.fit, tensorboard=False))
        built = stages.build(fold_config, fold, announce=False)
        fitted = fit.fit_model(built.net, fold, fold_config, fold_run, verbose=0)
        outputs = built.net.predict(fit.make_dataset(fold.x_test, fold.y_test, 256), verbose=0)
        scores = evaluate.headline(
            evaluate.task_metrics(config.task, outputs, fold.y_test, fold.class_names)
        )
        scores.pop("rows", None)
        per_fold.append(scores)
        rows.append(
            {"train": len(fold.y_train), "val": len(fold.y_val), "held_out": len(fold.y_test)}
        )
        value = scores.get(metric, float("nan"))
        say(
            2,
            f"cross-validation: fold {index}/{folds}: {metric} {value:.4f} on "
            f"{len(fold.y_test)} held-out rows ({fitted.epochs_run} epochs)",
        )
    summary = summarize(per_fold)
    keras.backend.clear_session()
    if metric in summary:
        say(
            2,
            f"cross-validation: {metric} {summary[metric]['mean']:.4f} ± "
            f"{summary[metric]['std']:.4f} over {folds} folds",
        )
    return {
        "folds": folds,
        "stratified": config.task == "classification",
        "seed": config.seed,
        "rows_per_fold": rows,
        "metrics": summary,
        "per_fold": per_fold,
        "seconds": round(time.monotonic() - started, 2),
    }
