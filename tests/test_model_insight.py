"""Looking inside a run: the fit's diagnosis, per-layer weights, permutation importance.

The pure parts on made-up curves, weights and scores with known answers; then what a real
trained model records in metadata.json and the report (the digits fixture here; the tabular
examples' importance in tests/test_training_examples.py, beside the fixture that trains them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import TrainedRepo

from training.fit_diagnosis import diagnose
from training.model_insight import permutation_importance, weight_statistics


def _curves(loss: list[float], val_loss: list[float], **more: list[float]) -> dict[str, Any]:
    return {"loss": loss, "val_loss": val_loss, **more}


def test_validation_loss_rising_after_its_best_epoch_is_overfitting() -> None:
    loss = [1.0 - 0.05 * i for i in range(15)]
    val = [1.0 - 0.1 * i for i in range(6)] + [0.5 + 0.03 * i for i in range(1, 10)]
    result = diagnose(_curves(loss, val), max_epochs=60, kept_epoch=6)
    assert result["verdict"] == "overfitting"
    assert result["numbers"]["best_epoch"] == 6
    assert result["numbers"]["val_loss_rising_epochs_after_best"] == 9
    assert "rose for 9 epochs after epoch 6" in result["summary"]
    assert "weights of epoch 6 are the ones kept" in result["summary"]


def test_a_large_train_validation_gap_is_overfitting_too() -> None:
    loss = [1.0, 0.6, 0.4, 0.35, 0.3]
    val = [1.0, 0.7, 0.6, 0.58, 0.59]
    history = _curves(loss, val, accuracy=[0.6, 0.8, 0.95, 0.97, 0.99])
    history["val_accuracy"] = [0.6, 0.75, 0.82, 0.85, 0.85]
    result = diagnose(history, max_epochs=60, metric="accuracy")
    assert result["verdict"] == "overfitting"
    assert result["numbers"]["metric_gap_at_best"] == pytest.approx(0.12)


def test_still_improving_at_the_last_allowed_epoch_is_under_trained() -> None:
    curve = [1.0 / (i + 1) for i in range(10)]
    result = diagnose(_curves(curve, [c + 0.01 for c in curve]), max_epochs=10)
    assert result["verdict"] == "under-trained"
    assert "epoch 10 of the 10 allowed" in result["summary"]


def test_missing_the_gate_even_on_training_data_is_underfitting() -> None:
    loss = [1.0, 0.8, 0.7, 0.69, 0.69, 0.7, 0.7]
    val = [1.0, 0.8, 0.7, 0.69, 0.695, 0.7, 0.7]
    history = _curves(loss, val, accuracy=[0.5, 0.55, 0.6, 0.61, 0.61, 0.6, 0.6])
    history["val_accuracy"] = [0.5, 0.55, 0.6, 0.6, 0.6, 0.6, 0.6]
    result = diagnose(history, max_epochs=60, metric="accuracy", threshold=0.9)
    assert result["verdict"] == "underfitting"
    assert "reaches the gate's 0.9" in result["summary"]


def test_a_flat_minimum_with_close_curves_is_a_good_fit() -> None:
    loss = [1.0, 0.5, 0.3, 0.25, 0.24, 0.24, 0.24, 0.24]
    val = [1.0, 0.5, 0.31, 0.27, 0.26, 0.262, 0.263, 0.262]
    result = diagnose(_curves(loss, val), max_epochs=60)
    assert result["verdict"] == "good fit"
    assert result["rules"]["rise_fraction"] == 0.05


def test_weight_statistics_are_exact_on_known_weights() -> None:
    import keras

    layer = keras.layers.Dense(2, name="dense")
    keras.Sequential([keras.Input((3,)), layer])
    layer.set_weights([np.array([[0.0, 1.0], [2.0, -2.0], [0.0, 0.001]]), np.array([0.0, 0.5])])
    kernel, bias = weight_statistics([layer])
    assert (kernel["layer"], kernel["weight"], kernel["shape"]) == ("dense", "kernel", [3, 2])
    assert kernel["l2_norm"] == pytest.approx(3.0, rel=1e-6)  # sqrt(1 + 4 + 4 + 1e-6)
    assert kernel["zeros"] == pytest.approx(2 / 6, rel=1e-5)
    assert kernel["near_zero"] == pytest.approx(3 / 6, rel=1e-5)  # |w| < 0.02
    assert sum(kernel["histogram"]["counts"]) == 6
    assert bias["mean_abs"] == pytest.approx(0.25)


def test_permutation_importance_finds_the_one_feature_used() -> None:
    rng = np.random.default_rng(0)
    x = {"used": rng.normal(size=500), "ignored": rng.normal(size=500)}
    labels = x["used"] > 0

    def accuracy(inputs: dict[str, np.ndarray]) -> float:
        return float(((inputs["used"] > 0) == labels).mean())

    result = permutation_importance(accuracy, x, higher_is_better=True, repeats=3, seed=1)
    assert list(result) == ["used", "ignored"]
    assert result["used"]["mean_drop"] == pytest.approx(0.5, abs=0.06)
    assert result["ignored"] == {"mean_drop": 0.0, "std": 0.0}


def test_a_trained_image_model_records_diagnosis_and_weights(trained_repo: TrainedRepo) -> None:
    meta = trained_repo.metadata()
    diagnosis = meta["fit_diagnosis"]
    assert diagnosis["verdict"] in ("good fit", "overfitting", "under-trained", "underfitting")
    assert diagnosis["numbers"]["kept_epoch"] == meta["training"]["best_epoch"]
    layers = {w["layer"] for w in meta["weights"]}
    assert len(layers) >= 3 and all(w["size"] > 0 for w in meta["weights"])
    assert "feature_importance" not in meta  # one image input: nothing to shuffle by column
    report = Path(meta["training"]["report"]).read_text()
    assert diagnosis["summary"] in report and "## Inside the model" in report
