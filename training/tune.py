"""``tfship tune CONFIG``: hyperparameter search over the ranges in the config's ``tune``.

Optuna's TPE sampler (seeded with the config's seed) proposes values for the keys under
``tune.search``; each trial builds and fits the model on the same splits and is scored on
the validation split — the test split stays untouched for the final ``tfship train``. The
search stops after ``tune.trials`` trials or ``tune.timeout_seconds``, whichever comes first,
and writes the best config out as YAML, ready for ``tfship train``.
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from training.config import LOWER_IS_BETTER, SearchRange, TrainConfig
from training.config_file import parse_config, read_raw_config, set_key
from training.errors import ConfigError, TrainingError


def _say(message: str) -> None:
    print(f"[tune] {message}", file=sys.stderr, flush=True)


def _set(raw: dict[str, Any], key: str, value: Any) -> None:
    set_key(raw, key, value, f"tune.search.{key}")


def _is_whole(*values: float | None) -> bool:
    return all(v is None or float(v).is_integer() for v in values)


def _suggest(trial: Any, key: str, spec: SearchRange) -> Any:
    if spec.choices is not None:
        # Optuna's categorical values must be scalars; lists (layer sizes) go by index.
        index = trial.suggest_categorical(key, list(range(len(spec.choices))))
        return spec.choices[index]
    assert spec.low is not None and spec.high is not None
    if _is_whole(spec.low, spec.high, spec.step) and spec.step is not None:
        return trial.suggest_int(key, int(spec.low), int(spec.high), step=int(spec.step))
    value = trial.suggest_float(key, spec.low, spec.high, log=spec.log, step=spec.step)
    # A stepped range gives 0.30000000000000004; the config should say 0.3.
    return round(value, 10) if spec.step is not None else value


def _first_value(spec: SearchRange) -> Any:
    if spec.choices is not None:
        return spec.choices[0]
    low = spec.low
    return (
        int(low) if low is not None and _is_whole(low, spec.high, spec.step) and spec.step else low
    )


def _trial_config(
    raw: dict[str, Any], values: dict[str, Any], base_dir: Path, epochs: int
) -> TrainConfig:
    trial_raw = copy.deepcopy(raw)
    for key, value in values.items():
        _set(trial_raw, key, value)
    # Trials are for comparing: no TensorBoard logs; fewer epochs if tune.epochs says so.
    _set(trial_raw, "fit.tensorboard", False)
    if epochs:
        _set(trial_raw, "fit.epochs", epochs)
    return parse_config(trial_raw, base_dir)


def check_search(raw: dict[str, Any], config: TrainConfig, base_dir: Path) -> None:
    """Every tuned key must exist and accept its range: fail before any training."""
    if not config.tune.search:
        raise ConfigError(
            "tune.search: nothing to tune; declare ranges, e.g. "
            "tune: {search: {fit.learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}}}"
        )
    for key, spec in config.tune.search.items():
        try:
            _trial_config(raw, {key: _first_value(spec)}, base_dir, config.tune.epochs)
        except ConfigError as exc:
            raise ConfigError(f"tune.search.{key}: {exc}") from None


def _shown(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows
    )


def run_tuning(
    config_path: Path,
    overrides: list[str],
    run_dir: Path,
    output: Path | None = None,
    trials: int | None = None,
    timeout: float | None = None,
) -> Path:
    raw = read_raw_config(config_path, overrides)
    base_dir = config_path.resolve().parent
    config = parse_config(raw, base_dir, str(config_path))
    check_search(raw, config, base_dir)
    trials = trials or config.tune.trials
    timeout = timeout or config.tune.timeout_seconds

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import optuna

    from training import data, evaluate, fit, model
    from training.run_folder import RunFolder

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    metric = config.gate_metric()
    direction = "minimize" if metric in LOWER_IS_BETTER else "maximize"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = run_dir / config.name / f"tune-{stamp}"
    folder.mkdir(parents=True, exist_ok=True)
    _say(
        f"{config.name}: up to {trials} trials or {timeout:g} s over "
        f"{', '.join(config.tune.search)}; scoring validation {metric} ({direction}); "
        f"logs in {folder}"
    )
    keras.utils.set_random_seed(config.seed)
    splits = data.prepare_data(config)  # once: the data settings are not tuned
    results: list[dict[str, Any]] = []
    best: list[float] = []

    def objective(trial: Any) -> float:
        started = time.monotonic()
        values = {key: _suggest(trial, key, spec) for key, spec in config.tune.search.items()}
        trial_config = _trial_config(raw, values, base_dir, config.tune.epochs)
        keras.backend.clear_session()
        keras.utils.set_random_seed(config.seed)
        net, _, _ = model.build_model(trial_config, splits)
        run = RunFolder(folder / f"trial-{trial.number}", f"trial-{trial.number}", False)
        fitted = fit.fit_model(net, splits, trial_config, run, verbose=0)
        outputs = net.predict(fit.make_dataset(splits.x_val, splits.y_val, 256), verbose=0)
        score = float(
            evaluate.task_metrics(trial_config.task, outputs, splits.y_val, splits.class_names)[
                metric
            ]
        )
        if not math.isfinite(score):
            raise TrainingError(f"trial {trial.number}: validation {metric} is {score}")
        pick = min if direction == "minimize" else max
        best[:] = [pick([*best, score])]
        seconds = time.monotonic() - started
        shown = ", ".join(f"{k}={_shown(v)}" for k, v in values.items())
        _say(
            f"trial {trial.number + 1}/{trials}: {shown} -> validation {metric} {score:.4f} "
            f"(best {best[0]:.4f}; {fitted.epochs_run} epochs, {seconds:.1f} s)"
        )
        results.append(
            {
                "trial": trial.number,
                **values,
                metric: score,
                "epochs": fitted.epochs_run,
                "seconds": round(seconds, 1),
            }
        )
        return score

    sampler = optuna.samplers.TPESampler(seed=config.seed)
    study = optuna.create_study(direction=direction, sampler=sampler)
    study.optimize(objective, n_trials=trials, timeout=timeout)
    if not results:
        raise TrainingError("no trial finished within tune.timeout_seconds; raise it")

    best_trial = study.best_trial
    best_values = {
        key: _suggest(optuna.trial.FixedTrial(best_trial.params), key, spec)
        for key, spec in config.tune.search.items()
    }
    tuned = copy.deepcopy(raw)
    for key, value in best_values.items():
        _set(tuned, key, value)
    target = output or folder / "best.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Tuned by `tfship tune {config_path}` on {stamp}: trial {best_trial.number} of "
        f"{len(results)}, validation {metric} {best_trial.value:.4f}.\n"
    )
    data_path = tuned.get("data", {}).get("path")
    if data_path and not Path(data_path).is_absolute():
        # The tuned file lives elsewhere: its data path must not depend on where.
        tuned["data"]["path"] = str((base_dir / data_path).resolve())
    target.write_text(header + yaml.safe_dump(tuned, sort_keys=False))
    with (folder / "trials.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(results[0]))
        writer.writeheader()
        writer.writerows(results)

    rows = [["trial", *config.tune.search, metric, "epochs", "seconds"]]
    for r in sorted(results, key=lambda r: r[metric], reverse=direction == "maximize"):
        rows.append(
            [
                str(r["trial"]),
                *(str(r[k]) for k in config.tune.search),
                f"{r[metric]:.4f}",
                str(r["epochs"]),
                str(r["seconds"]),
            ]
        )
    _say(f"{len(results)} trials, best first:\n{_table(rows)}")
    _say(f"best config written to {target}; train it with: tfship train {target}")
    return target
