"""``tfship tune``: a bounded Optuna search over the config's ranges that writes the best
config out, scored on the validation split."""

from __future__ import annotations

import csv
import subprocess
import time
from pathlib import Path

import yaml
from conftest import ROOT, quiet_env, runs_dir_for, tfship_command

from training.config_file import load_config

CONFIG = ROOT / "training" / "configs" / "breast_cancer.yaml"


def tune(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [*tfship_command(), "tune", str(CONFIG), "--run-dir", str(runs_dir_for(tmp_path))]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        env=quiet_env(),
        cwd=ROOT,
        timeout=600,
    )


def test_tune_writes_the_best_config(tmp_path: Path) -> None:
    best = tmp_path / "best.yaml"
    result = tune(tmp_path, "--trials", "3", "--set", "tune.epochs=4", "--output", str(best))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[tune] trial 3/3:" in result.stderr and "3 trials, best first" in result.stderr
    assert f"best config written to {best}" in result.stderr

    (trials_csv,) = runs_dir_for(tmp_path).glob("breast_cancer/tune-*/trials.csv")
    with trials_csv.open() as f:
        trials = list(csv.DictReader(f))
    assert len(trials) == 3
    top = max(trials, key=lambda row: float(row["roc_auc"]))

    tuned = load_config(best)  # a config tfship train takes as it is
    raw = yaml.safe_load(best.read_text())
    assert f"validation roc_auc {float(top['roc_auc']):.4f}" in best.read_text().splitlines()[0]
    assert tuned.fit.learning_rate == float(top["fit.learning_rate"])
    assert str(tuned.model.dense_units) == top["model.dense_units"]
    assert tuned.fit.batch_size == int(top["fit.batch_size"])
    assert raw["tune"]["search"]  # kept, so the search can be run again from the result
    assert tuned.fit.epochs == load_config(CONFIG).fit.epochs  # tune.epochs is for trials


def test_tune_stops_at_its_time_limit(tmp_path: Path) -> None:
    started = time.monotonic()
    result = tune(tmp_path, "--trials", "50", "--timeout", "0.5", "--set", "tune.epochs=2")
    assert result.returncode == 0, result.stderr[-3000:]
    # Optuna checks the limit between trials: the first one finishes, no second starts.
    assert "1 trials, best first" in result.stderr
    assert time.monotonic() - started < 120


def test_tune_refuses_a_bad_search_before_training(tmp_path: Path) -> None:
    bad_key = tune(tmp_path, "--set", "tune.search={fit.nope: {low: 1, high: 2}}")
    assert bad_key.returncode == 2
    assert "tune.search.fit.nope: fit.nope: unknown key" in bad_key.stderr
    bad_range = tune(tmp_path, "--set", "tune.search={model.dropout: {low: 0.5, high: 0.1}}")
    assert bad_range.returncode == 2
    assert "tune.search.model.dropout: needs low < high" in bad_range.stderr
    nothing = tune(tmp_path, "--set", "tune.search={}")
    assert nothing.returncode == 2 and "tune.search: nothing to tune" in nothing.stderr
    assert not runs_dir_for(tmp_path).exists()
