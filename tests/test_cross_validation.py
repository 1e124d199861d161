"""k-fold cross-validation: folds are disjoint, stratified and leave the test rows out;
the summary is the folds' mean and spread; a real run records it and publishes the same
model as a run without folds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, ExamplesRepo, run_training

from training.config_file import load_config
from training.cross_validation import summarize
from training.data import fold_splits, prepare_data
from training.errors import ConfigError, DataError

CHURN = ROOT / "training" / "configs" / "churn.yaml"


@pytest.fixture(scope="module")
def churn_splits() -> tuple[object, object]:
    config = load_config(CHURN, ["data.balance=oversample"])
    return config, prepare_data(config)


def test_folds_are_disjoint_cover_train_and_val_and_leave_test_out(churn_splits: tuple) -> None:
    config, splits = churn_splits
    folds = fold_splits(splits, config, 4)
    pool = set(splits.rows["train"]) | set(splits.rows["val"])
    held = [set(fold.rows["test"]) for fold in folds]
    assert set().union(*held) == pool and sum(len(h) for h in held) == len(pool)
    for fold, out in zip(folds, held, strict=True):
        assert not out & set(splits.rows["test"])
        inside = set(fold.rows["train"]) | set(fold.rows["val"])
        assert inside == pool - out and not set(fold.rows["train"]) & set(fold.rows["val"])
        # Oversampling ran on the fold's own train rows: as many rows per class there.
        assert len(set(np.bincount(fold.y_train).tolist())) == 1
        assert len(fold.y_test) == len(out)


def test_folds_are_stratified(churn_splits: tuple) -> None:
    config, splits = churn_splits
    pool = np.concatenate([splits.rows["train"], splits.rows["val"]])
    share = np.bincount(splits.dataset.y[pool]) / len(pool)
    for fold in fold_splits(splits, config, 5):
        counts = np.bincount(fold.y_test, minlength=len(share))
        assert np.all(np.abs(counts - share * len(fold.y_test)) <= 1)


def test_too_many_folds_for_the_smallest_class_is_a_clear_error(churn_splits: tuple) -> None:
    config, splits = churn_splits
    with pytest.raises(DataError, match="the smallest class has"):
        fold_splits(splits, config, 10_000)


def test_one_fold_is_refused_by_the_config_check() -> None:
    with pytest.raises(ConfigError, match=r"cross_validation\.folds: 1"):
        load_config(CHURN, ["cross_validation.folds=1"])


def test_summary_is_the_mean_and_sample_spread_of_the_folds() -> None:
    summary = summarize([{"accuracy": 0.8, "loss": 0.5}, {"accuracy": 0.9, "loss": 0.3}])
    assert summary["accuracy"]["mean"] == pytest.approx(0.85)
    assert summary["accuracy"]["std"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert summary["loss"]["mean"] == pytest.approx(0.4)


def test_a_run_with_folds_records_them_and_publishes_the_same_model(
    examples_repo: ExamplesRepo, tmp_path: Path
) -> None:
    result = run_training(
        tmp_path / "models", "cross_validation.folds=3", config=CHURN, run_dir=tmp_path / "runs"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "cross-validation: accuracy" in result.stderr + result.stdout
    meta = json.loads((tmp_path / "models" / "churn" / "1" / "metadata.json").read_text())
    cv = meta["cross_validation"]
    assert cv["folds"] == 3 and cv["stratified"] and len(cv["per_fold"]) == 3
    accuracies = [fold["accuracy"] for fold in cv["per_fold"]]
    assert cv["metrics"]["accuracy"]["mean"] == pytest.approx(np.mean(accuracies))
    assert all(0.5 < a <= 1.0 for a in accuracies)
    # Every kept row outside the test split is held out once (the train split's count in
    # metadata includes the rows oversampling added).
    data = meta["data"]
    assert sum(r["held_out"] for r in cv["rows_per_fold"]) == (
        data["cleaning"]["rows_kept"] - data["rows"]["test"]
    )
    report = Path(meta["training"]["report"]).read_text()
    assert "## Cross-validation" in report and "3-fold stratified" in report
    # The folds change nothing of the final model: the random state is reset after them.
    plain = examples_repo.metadata("churn")
    assert meta["training"]["best_epoch"] == plain["training"]["best_epoch"]
    assert meta["metrics"]["onnx"]["accuracy"] == pytest.approx(
        plain["metrics"]["onnx"]["accuracy"], abs=1e-9
    )


def test_folds_beside_fine_tuning_or_distillation_are_refused() -> None:
    for config in ("digits-finetune.yaml", "digits-distilled.yaml"):
        with pytest.raises(ConfigError, match="not with init_from or distill"):
            load_config(ROOT / "training" / "configs" / config, ["cross_validation.folds=3"])
