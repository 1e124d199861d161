"""The training baseline in metadata.json: quantile bins, missing rates, vocabulary shares,
per-channel intensity histograms and the test split's predicted classes, from real runs and
from arrays with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ExamplesRepo, TrainedRepo

from training.baseline_profile import categorical, input_profile, intensities, numeric


def test_numeric_columns_get_deciles_and_a_missing_rate() -> None:
    values = np.concatenate([np.arange(1, 101, dtype=np.float64), [np.nan] * 25])
    described = numeric(values)
    assert described["missing_rate"] == pytest.approx(0.2)
    assert len(described["edges"]) == 9 and described["edges"] == sorted(described["edges"])
    assert described["shares"] == pytest.approx([0.1] * 10)
    # Few distinct values: duplicate edges merge; the shares still add up.
    few = numeric(np.array([0, 0, 0, 1, 1, 2] * 10, dtype=np.float64))
    assert few["edges"] == sorted(set(few["edges"])) and sum(few["shares"]) == pytest.approx(1)


def test_categorical_columns_get_value_shares() -> None:
    described = categorical(np.array(["a", "b", "a", None], dtype=object))
    assert described["values"] == {"a": pytest.approx(2 / 3), "b": pytest.approx(1 / 3)}
    assert described["missing_rate"] == pytest.approx(0.25) and described["unseen_rate"] == 0


def test_images_get_a_histogram_per_channel() -> None:
    pixels = np.zeros((4, 2, 2, 3))
    pixels[..., 1] = 1.0
    channels = intensities(pixels)["channels"]
    assert len(channels) == 3
    # A constant channel: one bin from its value up, holding every pixel.
    assert channels[1]["edges"][0] == 1.0 and channels[1]["shares"][0] == 1.0
    assert channels[0]["edges"][0] == 0.0 and channels[0]["shares"][0] == 1.0
    matrix = input_profile(np.arange(12, dtype=np.float32).reshape(4, 3))
    assert list(matrix["features"]) == ["[0]", "[1]", "[2]"]


def test_a_trained_image_classifier_records_its_baseline(trained_repo: TrainedRepo) -> None:
    meta = trained_repo.metadata()
    baseline = meta["baseline_profile"]
    assert baseline["split"] == "train" and baseline["rows"] == meta["data"]["rows"]["train"]
    (channel,) = baseline["inputs"]["pixels"]["features"]["intensity"]["channels"]
    assert channel["edges"][0] == 0.0 and channel["edges"][-1] == 16.0  # digits' 0-16 range
    assert sum(channel["shares"]) == pytest.approx(1, abs=1e-5)
    shares = baseline["predictions"]["shares"]
    assert list(shares) == meta["class_names"] and sum(shares.values()) == pytest.approx(
        1, abs=1e-5
    )
    matrix = meta["evaluation"]["confusion_matrix"]
    predicted = np.asarray(matrix).sum(axis=0) / np.asarray(matrix).sum()
    assert list(shares.values()) == pytest.approx(predicted.tolist(), abs=1e-5)


def test_a_csv_model_records_raw_columns(examples_repo: ExamplesRepo) -> None:
    meta = examples_repo.metadata("churn")
    inputs = meta["baseline_profile"]["inputs"]
    assert set(inputs) == {i["name"] for i in meta["inputs"]}
    plan = inputs["plan"]["features"]["value"]
    assert plan["kind"] == "categorical" and set(plan["values"]) == {"basic", "premium", "standard"}
    # Raw rows, before imputation: the missing values clients may send are counted.
    assert any(f["value"]["missing_rate"] > 0 for f in (v["features"] for v in inputs.values()))
