"""Drift scores, in process: request values land in the bins the training baseline was
made with, PSI has its textbook values, the window forgets, sampling holds its rate, and
workers' windows merge into the server's."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from service.drift.reference import Reference
from service.drift.scores import THRESHOLD, psi, score, window
from service.drift.tracker import DriftTracker
from service.drift.window import SlidingCounts
from service.models.model_view import ModelView
from service.models.runtimes.base import Signature, TensorSpec
from service.models.worker_readiness import drift_file
from tfship.version_metadata import VersionMetadata
from training.baseline_profile import profile


def _tabular_profile(rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict]:
    x = {
        "price": np.concatenate([rng.gamma(2.0, 10.0, 995), [np.nan] * 5]).astype(np.float32),
        "plan": rng.choice(np.array(["basic", "plus", "pro"], dtype=object), 1000),
        "matrix": rng.normal(size=(1000, 3)).astype(np.float32),
    }
    outputs = rng.dirichlet([1, 1], 1000)
    return x, profile(x, "classification", outputs, ["no", "yes"])


def _version_psi(reference: Reference, x: dict, prediction: np.ndarray | None) -> dict:
    counts = np.bincount(reference.slots(x, prediction), minlength=reference.size)
    scored = score("m", 1, reference.layout(), len(next(iter(x.values()))), counts)
    return {(f.input, f.feature): f for f in scored.features} | {"inputs": scored.inputs}


def test_the_training_rows_themselves_score_zero() -> None:
    """Every kind of feature: the profile's own rows, counted by the server's bins, give
    the profile's shares back (PSI 0): the two sides bin alike."""
    rng = np.random.default_rng(0)
    x, described = _tabular_profile(rng)
    reference = Reference(described)
    scores = _version_psi(reference, x, None)
    assert {k for k in scores if k != "inputs"} == {
        ("price", "value"), ("plan", "value"),
        ("matrix", "[0]"), ("matrix", "[1]"), ("matrix", "[2]"),
    }  # fmt: skip
    for key, feature in scores.items():
        if key != "inputs":
            assert feature.score == pytest.approx(0, abs=1e-4), key  # edges kept to 8 digits
    assert scores[("price", "value")].missing_share == pytest.approx(0.005)
    pixels = rng.integers(0, 17, size=(300, 8, 8, 1)).astype(np.float32)
    image = Reference(profile({"pixels": pixels}, "regression", rng.normal(size=300), []))
    counts = np.bincount(image.slots({"pixels": pixels}, None), minlength=image.size)
    (feature,) = image.features[:1]
    assert feature.name == "intensity"
    assert psi(feature.expected, counts[feature.start : feature.stop]) == pytest.approx(0, abs=1e-5)


def test_psi_has_its_textbook_value() -> None:
    expected = np.array([0.5, 0.5])
    # (0.8 - 0.5) ln(0.8 / 0.5) + (0.2 - 0.5) ln(0.2 / 0.5)
    assert psi(expected, np.array([80, 20])) == pytest.approx(0.3 * np.log(1.6) + 0.3 * np.log(2.5))
    assert psi(expected, np.array([50, 50])) == 0
    assert psi(expected, np.array([0, 0])) == 0  # no values: nothing to say


def test_shifted_values_and_unseen_categories_score_above_the_threshold() -> None:
    rng = np.random.default_rng(1)
    _, described = _tabular_profile(rng)
    reference = Reference(described)
    fresh, _ = _tabular_profile(np.random.default_rng(2))
    normal = _version_psi(reference, fresh, None)
    assert max(normal["inputs"].values()) < 0.05
    shifted = {**fresh, "price": fresh["price"] * 2.0}
    assert _version_psi(reference, shifted, None)[("price", "value")].score > THRESHOLD
    unseen = fresh["plan"].copy()
    unseen[:200] = "enterprise"
    plan = _version_psi(reference, {**fresh, "plan": unseen}, None)[("plan", "value")]
    assert plan.unseen_share == pytest.approx(0.2) and plan.score > THRESHOLD
    # One drifting column of three: the input's score is the mean of its features'.
    matrix = fresh["matrix"].copy()
    matrix[:, 0] += 3.0
    moved = _version_psi(reference, {**fresh, "matrix": matrix}, None)
    column = moved[("matrix", "[0]")].score
    assert column > THRESHOLD
    assert moved["inputs"]["matrix"] == pytest.approx(
        (column + moved[("matrix", "[1]")].score + moved[("matrix", "[2]")].score) / 3
    )


def test_the_window_keeps_only_the_latest_rows() -> None:
    counts = SlidingCounts(size=2, rows=500)  # blocks of 10 rows
    for _ in range(20):  # 200 rows of slot 0
        counts.add(10, np.zeros(10, dtype=np.int64), np.arange(10))
    for _ in range(10):  # then 100 rows of slot 1
        counts.add(10, np.ones(10, dtype=np.int64), np.arange(10))
    rows, total = window(counts.blocks(), 100)
    assert rows == 100 and total is not None and total.tolist() == [0, 100]
    rows, total = window(counts.blocks(), 50)
    assert rows == 50 and total.tolist() == [0, 50]
    for _ in range(50):  # a whole window more of slot 1: the slot 0 rows are dropped
        counts.add(10, np.ones(10, dtype=np.int64), np.arange(10))
    rows, total = window(counts.blocks(), 10_000)
    assert rows == 500 and total.tolist() == [0, 500]


def _view(described: dict, name: str = "m") -> ModelView:
    signature = Signature(
        "serving_default",
        (TensorSpec("price", "float32", (-1,)),),
        (TensorSpec("probabilities", "float32", (-1, 2)),),
    )
    metadata = VersionMetadata(name=name, record={"baseline_profile": described})
    return ModelView.build(name, 1, "onnx", signature, metadata, True, lambda i, o: {})


def _price_profile() -> dict:
    rng = np.random.default_rng(3)
    price = rng.gamma(2.0, 10.0, 1000)
    return profile({"price": price}, "classification", rng.dirichlet([1, 1], 1000), ["a", "b"])


def test_sampling_holds_the_rate_and_a_large_request_is_split_evenly() -> None:
    tracker = DriftTracker(rows=10_000, sample_rate=50)
    view = _view(_price_profile())
    tracker.track([view])
    one_row = {"price": np.array([10.0], dtype=np.float32)}
    answer = {"probabilities": np.array([[0.3, 0.7]], dtype=np.float32)}
    started = time.monotonic()
    for _ in range(2000):
        tracker.observe(view, one_row, answer)
    seconds = time.monotonic() - started
    (scores,) = tracker.scores()
    # One second's worth at first, then the rate: never all 2,000.
    assert scores.rows <= 50 + 50 * seconds + 1
    big = {"price": np.arange(1000, dtype=np.float32)}
    time.sleep(1.0)  # the bucket refills to one second's worth
    tracker.observe(view, big, {"probabilities": np.tile([[0.5, 0.5]], (1000, 1))})
    (after,) = tracker.scores()
    assert 40 <= after.rows - scores.rows <= 50


def test_workers_windows_merge_into_the_servers(tmp_path: Path) -> None:
    """Each worker publishes its blocks; the one answering the scrape adds the others'."""
    described = _price_profile()
    view = _view(described)
    workers = [DriftTracker(1000, 1e9, tmp_path) for _ in range(2)]
    for tracker in workers:
        tracker.track([view])
    workers[0].observe(view, {"price": np.full(300, 5.0, np.float32)}, {})
    workers[1].observe(view, {"price": np.full(200, 500.0, np.float32)}, {})
    # What the other worker's publisher thread would write; its file under another pid.
    workers[1].publish(drift_file(tmp_path, 1))
    (merged,) = workers[0].scores()
    assert merged.rows == 500
    assert DriftTracker(1000, 1e9, None).scores() == []  # tracks no version: no scores
    # The merged window holds both workers' values: low prices and high ones.
    assert merged.features[0].values == 500


def test_versions_no_longer_served_leave_the_scores() -> None:
    tracker = DriftTracker(1000, 1e9)
    first, second = _view(_price_profile(), "a"), _view(_price_profile(), "b")
    tracker.track([first, second])
    assert [s.model for s in tracker.scores()] == ["a", "b"]
    assert all(s.rows == 0 and not s.inputs for s in tracker.scores())  # nothing seen yet
    tracker.track([second])
    assert [s.model for s in tracker.scores()] == ["b"]


def test_a_version_without_a_baseline_is_not_scored() -> None:
    tracker = DriftTracker(1000, 1e9)
    view = _view(_price_profile())
    bare = ModelView.build(
        "bare", 1, "onnx", view.signature, VersionMetadata(name="bare"), True, lambda i, o: {}
    )
    assert bare.drift_profile is None
    tracker.track([bare])
    assert tracker.scores() == []


def test_an_unreadable_baseline_costs_its_scores_not_its_requests(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = {
        "format": 1,
        "inputs": {"pixels": {"features": {"intensity": {"kind": "intensity", "channels": [
            {"edges": [0.0, 1.0], "shares": [0.5, 0.5]}  # one edge short
        ]}}}},
    }  # fmt: skip
    tracker = DriftTracker(1000, 1e9)
    view = _view(broken)
    with caplog.at_level("WARNING", logger="tfship.drift"):
        tracker.track([view])
    assert "its baseline_profile cannot be read" in caplog.text
    tracker.observe(view, {"pixels": np.zeros((1, 2, 2, 1), np.float32)}, {})
    assert tracker.scores() == []
    newer = {**_price_profile(), "format": 2}
    tracker.track([_view(newer, "future")])
    assert tracker.scores() == []
