"""One training run, top to bottom: data -> model -> fit -> evaluate -> export -> gate/publish.

Nothing is visible in the repository until every step, the parity check and the quality
gate included, has passed: the version is assembled in a hidden staging folder and renamed
into place. Logs, plots and the report go to the run folder whatever the outcome.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tfship.repository import (
    ONNX_FILE,
    SAVED_MODEL_PARTS,
    VersionRef,
    artifact_key,
    digest_files,
    files_under,
    new_temp_dir,
    publish,
    remove_stale_temp_dirs,
    write_metadata,
)
from tfship.version_metadata import TensorInfo, VersionMetadata
from training.config import TrainConfig
from training.errors import ExportError, GateRefused, TrainingError

STAGES = 6


def _say(step: int, message: str) -> None:
    print(f"[{step}/{STAGES}] {message}", file=sys.stderr, flush=True)


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
    import keras
    import numpy as np
    import tensorflow as tf

    from training import data, evaluate, export, fit, gate, model, quantize
    from training.run_folder import finish_run, open_run

    # Before any other TensorFlow op: multi-worker collectives are set up at creation.
    strategy = distribute.make_strategy(cluster)
    _setup_tensorflow(config)
    clock = StageClock()
    task = config.task
    if cluster is not None and not cluster.is_chief:
        # Its own logs and backup, apart from the chief's.
        run_dir = run_dir / f".worker-{cluster.index}"

    with clock.stage("data"):
        _say(1, f"data: loading {config.data.source} {config.data.path or config.data.dataset}")
        splits = data.prepare_data(config)
        cleaning = splits.cleaning
        _say(
            1,
            f"data: {splits.description}; {cleaning['rows_kept']} of {cleaning['rows_loaded']} "
            f"rows kept; split {splits.sizes()} (seed {config.seed})",
        )
    run = open_run(run_dir, config)

    with clock.stage("model"), strategy.scope():
        net, specs, preprocessing_info = model.build_model(config, splits)
        output = model.output_name(task)
        _say(
            2,
            f"model: {config.model.architecture}, {net.count_params():,} parameters, inputs "
            f"{', '.join(s.name for s in specs)}; preprocessing in the graph: "
            + ", ".join(str(p["layer"]) for p in preprocessing_info),
        )

    with clock.stage("fit"):
        resume_note = ""
        if run.resumed and run.backed_up_epochs():
            resume_note = f", resuming run {run.run_id} after epoch {run.backed_up_epochs()}"
        _say(
            3,
            f"fit: up to {config.fit.epochs} epochs, early stopping on "
            f"{config.fit.early_stopping.monitor}{resume_note}; "
            f"{distribute.describe(strategy, cluster)}; logs in {run.root}",
        )
        with strategy.scope():
            fitted = fit.fit_model(net, splits, config, run, strategy=strategy)
        if config.fit.mixed_precision or strategy.num_replicas_in_sync > 1:
            # Serving gets a plain float32 model with the trained weights: mixed precision
            # is for training speed, and a model built outside the strategy exports without
            # collective saving (so ONNX and TF agree to the usual tolerance).
            keras.mixed_precision.set_global_policy("float32")
            trained = net
            net, _, _ = model.build_model(config, splits)
            net.set_weights(trained.get_weights())
            why = "mixed precision" if config.fit.mixed_precision else "distributed"
            _say(3, f"fit: {why} training done; exporting a float32 single-device copy")
    if cluster is not None and not cluster.is_chief:
        finish_run(run_dir, config)
        _say(
            6,
            f"worker {cluster.index}: trained in lock-step with the chief (worker 0), "
            "which evaluates and publishes; waiting for it",
        )
        outcome = distribute.wait_for_chief()
        if not outcome.startswith(distribute.PUBLISHED):
            raise TrainingError(f"the chief's run ended without a version: {outcome}")
        _say(6, f"worker {cluster.index}: the chief {outcome}; nothing is published here")
        return None

    with clock.stage("evaluate"):
        _say(4, "evaluate: Keras model on the test split")
        x_test = splits.x_test
        keras_out = net.predict(fit.make_dataset(x_test, splits.y_test, 256), verbose=0)
        evaluation = evaluate.task_metrics(task, keras_out, splits.y_test, splits.class_names)
        gate_value = float(evaluation.get(config.gate_metric(), float("nan")))
        _say(4, f"evaluate: test {config.gate_metric()} {gate_value:.4f}")

    model_root = model_dir / config.name
    for stale in remove_stale_temp_dirs(model_root):
        _say(5, f"export: removed leftover staging folder {stale.name} of an earlier run")
    staging = new_temp_dir(model_root)
    outcome = "failed"
    decision = None
    metadata: VersionMetadata | None = None
    ref: VersionRef | None = None
    try:
        with clock.stage("export"):
            _say(5, "export: SavedModel")
            saved = export.export_saved_model(net, specs, output, staging, splits.class_names)
            if config.export.warmup_rows:
                warm = {k: v[: config.export.warmup_rows] for k, v in x_test.items()}
                export.write_warmup_requests(staging, config.name, specs, warm)
            _say(5, f"export: ONNX (tf2onnx, opset {config.export.onnx_opset})")
            export.convert_to_onnx(staging, config.export.onnx_opset)
            _say(5, "export: parity, ONNX Runtime vs TensorFlow on the whole test split")
            tf_out = export.predict_saved_model(staging, x_test, output)
            onnx_out = export.predict_onnx(staging / ONNX_FILE, x_test, output)
            max_diff = float(np.abs(tf_out - onnx_out).max())
            if not max_diff <= config.export.parity_tolerance:
                raise ExportError(
                    f"ONNX output differs from TensorFlow by {max_diff:.3g} on the test split "
                    f"(tolerance {config.export.parity_tolerance:g}); nothing was published"
                )
        artifacts: dict[str, dict[str, Any]] = {
            "savedmodel": {
                "format": "tf_saved_model",
                "files": digest_files(staging, files_under(staging, SAVED_MODEL_PARTS)),
            },
            "onnx": {
                "format": "onnx",
                "opset": config.export.onnx_opset,
                "files": digest_files(staging, [ONNX_FILE]),
            },
        }
        for entry in artifacts.values():
            entry["size_bytes"] = sum((staging / f).stat().st_size for f in entry["files"])
            entry["gzip_bytes"] = quantize.gzip_size([staging / f for f in entry["files"]])
        saved_metrics = evaluate.task_metrics(task, tf_out, splits.y_test, splits.class_names)
        metrics = {
            "keras": evaluate.headline(evaluation),
            "savedmodel": evaluate.headline(saved_metrics),
            "onnx": evaluate.headline(
                evaluate.task_metrics(task, onnx_out, splits.y_test, splits.class_names)
            ),
        }
        compression: dict[str, Any] = {"pruning": fitted.pruning, "variants": {}}
        if config.compress.quantize:
            with clock.stage("quantize"):
                calibration = quantize.sample_rows(
                    splits.x_train, config.compress.calibration_rows, config.seed
                )
                for variant in config.compress.quantize:
                    outcome_of = quantize.build_variant(
                        variant,
                        config,
                        staging,
                        calibration,
                        x_test,
                        splits.y_test,
                        splits.class_names,
                        output,
                        metrics["onnx"][config.gate_metric()],
                    )
                    record = outcome_of.record
                    compression["variants"][variant] = record
                    if outcome_of.published:
                        key = artifact_key("onnx", variant)
                        artifacts[key] = outcome_of.artifact or {}
                        metrics[key] = outcome_of.metrics or {}
                        _say(
                            5,
                            f"quantize: {variant} ({record['method']}) {record['size_bytes']:,}"
                            f" bytes = {record['size_ratio']:.0%} of float, "
                            f"{record['metric']} {record['value']:.4f} "
                            f"(float {record['float_value']:.4f})",
                        )
                    else:
                        _say(5, f"quantize: {variant} not published: {record['reason']}")
        decision = gate.decide(config, metrics["onnx"][config.gate_metric()], model_root, force)
        _say(6, f"quality gate: {decision.message}")
        metadata = VersionMetadata(
            name=config.name,
            task=task,
            signature_name=export.SIGNATURE_NAME,
            inputs=tuple(
                TensorInfo(t.name, t.dtype, tuple(t.shape), t.tf_name) for t in saved.inputs
            ),
            outputs=tuple(
                TensorInfo(t.name, t.dtype, tuple(t.shape), t.tf_name) for t in saved.outputs
            ),
            class_names=tuple(splits.class_names),
            artifacts=artifacts,
            tf_serving_signature_def=saved.signature_def_json,
            metrics=metrics,
            record={
                "preprocessing": preprocessing_info,
                "training_config": config.to_dict(),
                "data": {
                    "description": splits.description,
                    "rows": splits.sizes(),
                    "seed": config.seed,
                    "cleaning": cleaning,
                },
                "training": {
                    "run_id": run.run_id,
                    "run_folder": str(run.root),
                    "report": str(run.report),
                    "epochs_run": fitted.epochs_run,
                    "best_epoch": fitted.best_epoch,
                    "resumed_from_epoch": fitted.resumed_from_epoch,
                    "fit_seconds": clock.seconds["fit"],
                    "history": fitted.history,
                },
                "evaluation": {k: v for k, v in saved_metrics.items() if not isinstance(v, float)},
                "parity": {
                    "max_abs_diff": max_diff,
                    "tolerance": config.export.parity_tolerance,
                    "rows": len(splits.y_test),
                    "reference": "savedmodel",
                },
                "quality_gate": decision.to_dict(),
                "compression": compression,
                "environment": {
                    "python": platform.python_version(),
                    "tensorflow": tf.__version__,
                    "keras": keras.__version__,
                    "tf2onnx": _version_of("tf2onnx"),
                    "onnxruntime": _version_of("onnxruntime"),
                },
            },
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
    assert ref is not None
    total = time.monotonic() - started
    rows = [(stage, f"{seconds:.1f} s") for stage, seconds in clock.seconds.items()]
    rows += [
        ("total", f"{total:.1f} s"),
        (f"test {config.gate_metric()}", f"{decision.value:.4f}" if decision else "?"),
        ("parity max |diff|", f"{max_diff:.2g}"),
        ("report", str(run.report)),
    ]
    _say(
        6,
        f"published {ref.name} version {ref.version} at {ref.path}: test "
        f"{config.gate_metric()} {metrics['savedmodel'][config.gate_metric()]:.4f} "
        f"(SavedModel) / {metrics['onnx'][config.gate_metric()]:.4f} (ONNX), "
        f"parity max |diff| {max_diff:.2g}, {total:.1f} s\n" + _summary_table(rows),
    )
    return ref


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

    images = report.plot_history(history, run.plots)
    matrix = metadata["evaluation"].get("confusion_matrix")
    if matrix:
        images.append(report.plot_confusion(matrix, metadata["class_names"], run.plots))
    summary = {
        **metadata,
        "run_id": run.run_id,
        "outcome": outcome,
        "version_path": str(ref.path) if ref else None,
        "stage_seconds": stage_seconds,
        "training": {**metadata["training"], "fit_seconds": stage_seconds.get("fit")},
    }
    report.write_report(run.report, summary, images)


def _version_of(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None
