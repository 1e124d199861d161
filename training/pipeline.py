"""One training run, top to bottom: data -> model -> fit -> evaluate -> export -> gate/publish.

Nothing is visible in the repository until every step, the parity check and the quality
gate included, has passed: the version is assembled in a hidden staging folder and renamed
into place. Logs, plots and the report go to the run folder whatever the outcome.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tfship.repository import (
    VersionRef,
    new_temp_dir,
    publish,
    remove_stale_temp_dirs,
    write_metadata,
)
from tfship.version_metadata import VersionMetadata
from training import stages
from training.config import TrainConfig
from training.errors import ConfigError, GateRefused, TrainingError
from training.stages import say


class StageClock:
    """Seconds per stage, for the closing summary and the report."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = round(time.monotonic() - started, 2)


def _setup_tensorflow(config: TrainConfig) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    if config.fit.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy(
        "mixed_float16" if config.fit.mixed_precision else "float32"
    )


def _summary_table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)


def run_training(
    config: TrainConfig, model_dir: Path, run_dir: Path, force: bool = False
) -> VersionRef | None:
    """Train and publish; returns the new version, or None on a multi-worker run's
    non-chief worker (the chief publishes)."""
    from training import distribute

    cluster = distribute.cluster_from_env()
    if cluster is None or not cluster.is_chief:
        return _run(config, model_dir, run_dir, force, cluster)
    try:
        ref = _run(config, model_dir, run_dir, force, cluster)
    except BaseException as exc:
        with contextlib.suppress(Exception):  # TF may not have started: nobody waits then
            distribute.announce_outcome(f"failed: {exc}")
        raise
    assert ref is not None
    distribute.announce_outcome(f"{distribute.PUBLISHED} {ref.name} version {ref.version}")
    return ref


def _run(
    config: TrainConfig, model_dir: Path, run_dir: Path, force: bool, cluster: Any
) -> VersionRef | None:
    started = time.monotonic()
    from training import distribute

    # TensorFlow is imported only here, after the config has been checked, so a typo in
    # the config fails in a fraction of a second rather than after TF's start-up.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from training import gate
    from training.run_folder import finish_run, open_run

    # Before any other TensorFlow op: multi-worker collectives are set up at creation.
    strategy = distribute.make_strategy(cluster)
    _setup_tensorflow(config)
    clock = StageClock()
    if cluster is not None and not cluster.is_chief:
        # Its own logs and backup, apart from the chief's.
        run_dir = run_dir / f".worker-{cluster.index}"

    with clock.stage("data"):
        splits = stages.load_data(config)
    run = open_run(run_dir, config)
    teacher = None
    if config.distill.teacher.model:
        if cluster is not None:
            raise ConfigError("distill: runs on one machine; drop it for multi-worker")
        teacher = stages.teach(config, splits, model_dir)
    cross_validation = None
    if config.cross_validation.folds:
        if cluster is not None:
            raise ConfigError(
                "cross_validation: runs on one machine; drop it for a multi-worker run"
            )
        from training.cross_validation import cross_validate

        with clock.stage("cross_validation"):
            cross_validation = cross_validate(config, splits, run)
        # The final model starts from the same random state as a run without folds.
        _setup_tensorflow(config)
    lineage = None
    with clock.stage("model"), strategy.scope():
        built = stages.build(config, splits)
        if config.init_from.model:
            if cluster is not None:
                raise ConfigError("init_from: runs on one machine; drop it for multi-worker")
            lineage = stages.initialize_from(config, built, model_dir)
    frozen = lineage["frozen_layers"] if lineage else None
    with clock.stage("fit"):
        fitted, built = stages.train(config, splits, built, run, strategy, cluster, frozen)
    if cluster is not None and not cluster.is_chief:
        finish_run(run_dir, config)
        return _wait_for_chief(cluster)
    with clock.stage("evaluate"):
        evaluation = stages.evaluate_keras(config, splits, built)
        insight = stages.inspect(config, splits, built, fitted)

    model_root = model_dir / config.name
    for stale in remove_stale_temp_dirs(model_root):
        say(5, f"export: removed leftover staging folder {stale.name} of an earlier run")
    staging = new_temp_dir(model_root)
    outcome = "failed"
    decision = None
    metadata: VersionMetadata | None = None
    ref: VersionRef | None = None
    try:
        with clock.stage("export"):
            exported = stages.export_and_check(config, splits, built, staging)
        described = stages.describe(config, splits, evaluation, exported, fitted.pruning)
        if config.compress.quantize:
            with clock.stage("quantize"):
                stages.quantize_variants(config, splits, built, exported, described)
        gate_value = described.metrics["onnx"][config.gate_metric()]
        decision = gate.decide(config, gate_value, model_root, force)
        say(6, f"quality gate: {decision.message}")
        metadata = stages.version_metadata(
            config,
            splits,
            built=built,
            fitted=fitted,
            run=run,
            fit_seconds=clock.seconds["fit"],
            exported=exported,
            described=described,
            decision=decision,
            insight=insight
            | ({"cross_validation": cross_validation} if cross_validation else {})
            | ({"init_from": lineage} if lineage else {})
            | (
                {"distillation": stages.distillation_record(config, teacher, built, described)}
                if teacher
                else {}
            ),
        )
        if not decision.publish:
            outcome = "refused by the quality gate"
            raise GateRefused(f"{decision.message}; nothing was published (--force overrides)")

        def finalize(folder: Path, version: int) -> None:
            nonlocal metadata
            assert metadata is not None
            metadata = metadata.published(
                version,
                dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                training={"total_seconds": round(time.monotonic() - started, 2)},
            )
            write_metadata(folder, metadata)

        with clock.stage("publish"):
            ref = publish(staging, model_root, finalize)
            assert metadata is not None  # finalize() ran
            stages.write_triton_files(model_root, metadata)
        outcome = f"published as version {ref.version}"
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if metadata is not None:
            _write_report(
                run, config, metadata.to_json(), outcome, ref, clock.seconds, fitted.history
            )
        if outcome != "failed":
            finish_run(run_dir, config)
    assert ref is not None and decision is not None
    total = time.monotonic() - started
    metrics, gate_metric = described.metrics, config.gate_metric()
    rows = [(stage, f"{seconds:.1f} s") for stage, seconds in clock.seconds.items()]
    rows += [
        ("total", f"{total:.1f} s"),
        (f"test {gate_metric}", f"{decision.value:.4f}"),
        ("parity max |diff|", f"{exported.max_diff:.2g}"),
        ("report", str(run.report)),
    ]
    say(
        6,
        f"published {ref.name} version {ref.version} at {ref.path}: test "
        f"{gate_metric} {metrics['savedmodel'][gate_metric]:.4f} "
        f"(SavedModel) / {metrics['onnx'][gate_metric]:.4f} (ONNX), "
        f"parity max |diff| {exported.max_diff:.2g}, {total:.1f} s\n" + _summary_table(rows),
    )
    return ref


def _wait_for_chief(cluster: Any) -> None:
    """A multi-worker run's other workers: the chief evaluates and publishes."""
    from training import distribute

    say(
        6,
        f"worker {cluster.index}: trained in lock-step with the chief (worker 0), "
        "which evaluates and publishes; waiting for it",
    )
    outcome = distribute.wait_for_chief()
    if not outcome.startswith(distribute.PUBLISHED):
        raise TrainingError(f"the chief's run ended without a version: {outcome}")
    say(6, f"worker {cluster.index}: the chief {outcome}; nothing is published here")
    return None


def _write_report(
    run: Any,
    config: TrainConfig,
    metadata: dict[str, Any],
    outcome: str,
    ref: VersionRef | None,
    stage_seconds: dict[str, float],
    history: dict[str, list[float]],
) -> None:
    from training import report

    title = f"{config.name}, run {run.run_id}"
    best = metadata["training"].get("best_epoch", 0)
    images = report.plot_history(history, run.plots, title, best)
    matrix = metadata["evaluation"].get("confusion_matrix")
    if matrix:
        images.append(report.plot_confusion(matrix, metadata["class_names"], run.plots, title))
    summary = {
        **metadata,
        "run_id": run.run_id,
        "outcome": outcome,
        "version_path": str(ref.path) if ref else None,
        "stage_seconds": stage_seconds,
        "training": {**metadata["training"], "fit_seconds": stage_seconds.get("fit")},
    }
    report.write_report(run.report, summary, images)
    report.write_html(run.report.with_suffix(".html"), run.report, summary["name"])
