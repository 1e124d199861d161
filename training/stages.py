"""The stages of one training run, each a function with typed inputs and outputs.

``pipeline.py`` calls them in order; what one stage hands the next is a small record
(``Built``, ``Exported``, ``Described``), as TFX's trainer hands ``FnArgs`` to ``run_fn``.
TensorFlow is imported by the modules these call, never at this module's import, so a bad
config still fails before TensorFlow starts.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tfship.repository import (
    ONNX_FILE,
    SAVED_MODEL_PARTS,
    artifact_key,
    digest_files,
    files_under,
)
from tfship.version_metadata import TensorInfo, VersionMetadata
from training.config import TrainConfig
from training.data import Splits
from training.errors import ExportError

STAGES = 6


def say(step: int, message: str) -> None:
    print(f"[{step}/{STAGES}] {message}", file=sys.stderr, flush=True)


@dataclass
class Built:
    """The model stage's hand-over: the Keras model and what export needs to know of it."""

    net: Any  # keras.Model
    specs: list[Any]  # the model's input specs (name, dtype, shape)
    preprocessing: list[dict[str, Any]]  # the preprocessing layers inside the graph
    output: str  # the exported output's name


@dataclass
class Exported:
    """The export stage's hand-over: the staged artifacts and their predictions on the test
    split, which agree within the parity tolerance."""

    staging: Path
    saved: Any  # export.SavedModelInfo
    tf_out: np.ndarray
    onnx_out: np.ndarray
    max_diff: float


@dataclass
class Described:
    """Artifacts with their digests and sizes, and test metrics per artifact."""

    artifacts: dict[str, dict[str, Any]]
    metrics: dict[str, dict[str, Any]]
    saved_metrics: dict[str, Any]  # the SavedModel's full evaluation (per class, matrix)
    compression: dict[str, Any]


def load_data(config: TrainConfig) -> Splits:
    from training import data

    say(1, f"data: loading {config.data.source} {config.data.path or config.data.dataset}")
    splits = data.prepare_data(config, lambda message: say(1, message))
    cleaning = splits.cleaning
    say(
        1,
        f"data: {splits.description}; {cleaning['rows_kept']} of {cleaning['rows_loaded']} "
        f"rows kept; split {splits.sizes()} (seed {config.seed})",
    )
    if splits.stream is not None:
        plan = splits.stream
        say(
            1,
            f"data: scanned in {plan.scan_seconds:.1f} s; held in memory: samples of "
            f"{plan.sampled} rows (data.sample_rows); training reads the train split from disk",
        )
    return splits


def build(config: TrainConfig, splits: Splits, announce: bool = True) -> Built:
    from training import model

    net, specs, preprocessing = model.build_model(config, splits)
    built = Built(net, specs, preprocessing, model.output_name(config.task))
    if not announce:
        return built
    say(
        2,
        f"model: {config.model.architecture}, {net.count_params():,} parameters, inputs "
        f"{', '.join(s.name for s in specs)}; preprocessing in the graph: "
        + ", ".join(str(p["layer"]) for p in preprocessing),
    )
    return built


def initialize_from(config: TrainConfig, built: Built, model_dir: Path) -> dict[str, Any]:
    """Fine-tuning: the published version's weights into the built model (init_from)."""
    from training import init_from

    source = init_from.load_source(config, model_dir)
    lineage = init_from.apply(built.net, source, built.output, config.init_from.freeze)
    frozen = lineage["frozen_layers"]
    thaw = config.init_from.unfreeze_after
    say(
        2,
        f"model: weights of {source.name} version {source.version} in "
        f"{', '.join(lineage['loaded_layers'])}"
        + (f"; head replaced: {', '.join(r['layer'] for r in lineage['replaced_layers'])}"
           if lineage["replaced_layers"] else "")
        + (f"; frozen {'for ' + str(thaw) + ' epochs' if thaw else 'throughout'}: "
           f"{', '.join(frozen)}" if frozen else ""),
    )  # fmt: skip
    return lineage


def teach(config: TrainConfig, splits: Splits, model_dir: Path) -> dict[str, Any]:
    """Distillation: the teacher's soft targets for train and val, and its own test metric
    on this run's test split (what the student is measured against)."""
    from training import distill, evaluate

    teacher = distill.load_teacher(config, model_dir)
    splits.teacher_train = teacher.predict(splits.x_train)
    splits.teacher_val = teacher.predict(splits.x_val)
    scores = evaluate.headline(
        evaluate.task_metrics(
            config.task, teacher.predict(splits.x_test), splits.y_test, splits.class_names
        )
    )
    metric = config.gate_metric()
    say(
        2,
        f"distill: teacher {teacher.name} version {teacher.version} "
        f"({teacher.parameters:,} parameters), test {metric} {scores[metric]:.4f}; "
        f"temperature {config.distill.temperature:g}, alpha {config.distill.alpha:g}",
    )
    return {**teacher.record(), "test_metrics": scores}


def distillation_record(
    config: TrainConfig, teacher: dict[str, Any], built: Built, described: Described
) -> dict[str, Any]:
    metric = config.gate_metric()
    student = built.net.count_params()
    return {
        "teacher": teacher,
        "temperature": config.distill.temperature,
        "alpha": config.distill.alpha,
        "student_parameters": student,
        "parameter_ratio": round(student / teacher["parameters"], 4),
        "metric": metric,
        "student_test": described.metrics["onnx"][metric],
        "teacher_test": teacher["test_metrics"][metric],
    }


def train(
    config: TrainConfig,
    splits: Splits,
    built: Built,
    run: Any,
    strategy: Any,
    cluster: Any,
    frozen: list[str] | None = None,
) -> tuple[Any, Built]:
    """Fit; the fit result and the model to export (a float32 single-device copy when the
    fit ran in mixed precision or on several replicas)."""
    import keras

    from training import distribute, fit, model

    resume_note = ""
    if run.resumed and run.backed_up_epochs():
        resume_note = f", resuming run {run.run_id} after epoch {run.backed_up_epochs()}"
    say(
        3,
        f"fit: up to {config.fit.epochs} epochs, early stopping on "
        f"{config.fit.early_stopping.monitor}{resume_note}; "
        f"{distribute.describe(strategy, cluster)}; logs in {run.root}",
    )
    with strategy.scope():
        fitted = fit.fit_model(built.net, splits, config, run, strategy=strategy, frozen=frozen)
    if not (config.fit.mixed_precision or strategy.num_replicas_in_sync > 1):
        return fitted, built
    # Serving gets a plain float32 model with the trained weights: mixed precision is for
    # training speed, and a model built outside the strategy exports without collective
    # saving (so ONNX and TF agree to the usual tolerance).
    keras.mixed_precision.set_global_policy("float32")
    net, _, _ = model.build_model(config, splits)
    net.set_weights(built.net.get_weights())
    why = "mixed precision" if config.fit.mixed_precision else "distributed"
    say(3, f"fit: {why} training done; exporting a float32 single-device copy")
    return fitted, Built(net, built.specs, built.preprocessing, built.output)


def evaluate_keras(config: TrainConfig, splits: Splits, built: Built) -> dict[str, Any]:
    from training import evaluate, fit

    say(4, "evaluate: Keras model on the test split")
    dataset = fit.make_dataset(splits.x_test, splits.y_test, 256)
    keras_out = built.net.predict(dataset, verbose=0)
    evaluation = evaluate.task_metrics(config.task, keras_out, splits.y_test, splits.class_names)
    gate_value = float(evaluation.get(config.gate_metric(), float("nan")))
    say(4, f"evaluate: test {config.gate_metric()} {gate_value:.4f}")
    return evaluation


def inspect(config: TrainConfig, splits: Splits, built: Built, fitted: Any) -> dict[str, Any]:
    """The fit's diagnosis, per-layer weight statistics and, for tabular models, permutation
    importance on the test split: what the model learned and from what."""
    from training import evaluate, fit, fit_diagnosis, model_insight
    from training.config import LOWER_IS_BETTER

    metric = config.gate_metric()
    diagnosis = fit_diagnosis.diagnose(
        fitted.history, config.fit.epochs, metric, config.gate.threshold, fitted.best_epoch
    )
    say(4, f"inspect: {diagnosis['verdict']}: {diagnosis['summary']}")
    insight: dict[str, Any] = {
        "fit_diagnosis": diagnosis,
        "weights": model_insight.weight_statistics(built.net.layers),
    }
    tabular = all(v.ndim == 1 or (v.ndim == 2 and v.shape[1] == 1) for v in splits.x_test.values())
    if tabular and len(splits.x_test) > 1:

        def score(x: dict[str, np.ndarray]) -> float:
            outputs = built.net.predict(fit.make_dataset(x, splits.y_test, 1024), verbose=0)
            return float(
                evaluate.task_metrics(config.task, outputs, splits.y_test, splits.class_names)[
                    metric
                ]
            )

        importance = model_insight.permutation_importance(
            score,
            splits.x_test,
            higher_is_better=metric not in LOWER_IS_BETTER,
            repeats=PERMUTATION_REPEATS,
            seed=config.seed,
        )
        insight["feature_importance"] = {
            "metric": metric,
            "split": "test",
            "repeats": PERMUTATION_REPEATS,
            "features": importance,
        }
        top = ", ".join(f"{name} {v['mean_drop']:+.3f}" for name, v in list(importance.items())[:3])
        say(4, f"inspect: {metric} drop when shuffled, most used first: {top}")
    return insight


# Shuffles per feature for permutation importance: enough for a mean and a spread.
PERMUTATION_REPEATS = 3


def export_and_check(config: TrainConfig, splits: Splits, built: Built, staging: Path) -> Exported:
    """SavedModel, warm-up requests and ONNX into ``staging``; ONNX must agree with
    TensorFlow on the whole test split."""
    from training import export

    say(5, "export: SavedModel")
    saved = export.export_saved_model(
        built.net, built.specs, built.output, staging, splits.class_names
    )
    if config.export.warmup_rows:
        warm = {k: v[: config.export.warmup_rows] for k, v in splits.x_test.items()}
        export.write_warmup_requests(staging, config.name, built.specs, warm)
    say(5, f"export: ONNX (tf2onnx, opset {config.export.onnx_opset})")
    export.convert_to_onnx(staging, config.export.onnx_opset)
    say(5, "export: parity, ONNX Runtime vs TensorFlow on the whole test split")
    tf_out = export.predict_saved_model(staging, splits.x_test, built.output)
    onnx_out = export.predict_onnx(staging / ONNX_FILE, splits.x_test, built.output)
    max_diff = float(np.abs(tf_out - onnx_out).max())
    if not max_diff <= config.export.parity_tolerance:
        raise ExportError(
            f"ONNX output differs from TensorFlow by {max_diff:.3g} on the test split "
            f"(tolerance {config.export.parity_tolerance:g}); nothing was published"
        )
    return Exported(staging, saved, tf_out, onnx_out, max_diff)


def describe(
    config: TrainConfig,
    splits: Splits,
    evaluation: dict[str, Any],
    exported: Exported,
    pruning: dict[str, Any] | None,
) -> Described:
    """Digests and sizes of the staged artifacts; test metrics of Keras, SavedModel, ONNX."""
    from training import evaluate, quantize

    staging = exported.staging
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

    def metrics_of(scores: np.ndarray) -> dict[str, Any]:
        return evaluate.task_metrics(config.task, scores, splits.y_test, splits.class_names)

    saved_metrics = metrics_of(exported.tf_out)
    metrics = {
        "keras": evaluate.headline(evaluation),
        "savedmodel": evaluate.headline(saved_metrics),
        "onnx": evaluate.headline(metrics_of(exported.onnx_out)),
    }
    return Described(artifacts, metrics, saved_metrics, {"pruning": pruning, "variants": {}})


def quantize_variants(
    config: TrainConfig, splits: Splits, built: Built, exported: Exported, described: Described
) -> None:
    """Each configured variant into ``staging``, published only within its tolerance;
    the records go into ``described``."""
    from training import quantize

    calibration = quantize.sample_rows(
        splits.x_train, config.compress.calibration_rows, config.seed
    )
    for variant in config.compress.quantize:
        outcome = quantize.build_variant(
            variant,
            config,
            exported.staging,
            calibration,
            splits.x_test,
            splits.y_test,
            splits.class_names,
            built.output,
            described.metrics["onnx"][config.gate_metric()],
        )
        record = outcome.record
        described.compression["variants"][variant] = record
        if not outcome.published:
            say(5, f"quantize: {variant} not published: {record['reason']}")
            continue
        key = artifact_key("onnx", variant)
        described.artifacts[key] = outcome.artifact or {}
        described.metrics[key] = outcome.metrics or {}
        say(
            5,
            f"quantize: {variant} ({record['method']}) {record['size_bytes']:,} bytes = "
            f"{record['size_ratio']:.0%} of float, {record['metric']} {record['value']:.4f} "
            f"(float {record['float_value']:.4f})",
        )


def version_metadata(
    config: TrainConfig,
    splits: Splits,
    *,
    built: Built,
    fitted: Any,
    run: Any,
    fit_seconds: float,
    exported: Exported,
    described: Described,
    decision: Any,
    insight: dict[str, Any],
) -> VersionMetadata:
    """The version's metadata.json: the contract the server reads, and the run's record."""
    import keras
    import tensorflow as tf

    from training import export

    def tensors(infos: list[Any]) -> tuple[TensorInfo, ...]:
        return tuple(TensorInfo(t.name, t.dtype, tuple(t.shape), t.tf_name) for t in infos)

    return VersionMetadata(
        name=config.name,
        task=config.task,
        signature_name=export.SIGNATURE_NAME,
        inputs=tensors(exported.saved.inputs),
        outputs=tensors(exported.saved.outputs),
        class_names=tuple(splits.class_names),
        artifacts=described.artifacts,
        tf_serving_signature_def=exported.saved.signature_def_json,
        metrics=described.metrics,
        record={
            "preprocessing": built.preprocessing,
            "training_config": config.to_dict(),
            "data": {
                "description": splits.description,
                "rows": splits.sizes(),
                "seed": config.seed,
                "cleaning": splits.cleaning,
                **({"streaming": splits.stream.record()} if splits.stream is not None else {}),
            },
            "training": {
                "run_id": run.run_id,
                "run_folder": str(run.root),
                "report": str(run.report),
                "epochs_run": fitted.epochs_run,
                "best_epoch": fitted.best_epoch,
                "resumed_from_epoch": fitted.resumed_from_epoch,
                "fit_seconds": fit_seconds,
                "history": fitted.history,
            },
            "evaluation": {
                k: v for k, v in described.saved_metrics.items() if not isinstance(v, float)
            },
            **insight,
            "baseline_profile": _baseline(config, splits, exported),
            "parity": {
                "max_abs_diff": exported.max_diff,
                "tolerance": config.export.parity_tolerance,
                "rows": len(splits.y_test),
                "reference": "savedmodel",
            },
            "quality_gate": decision.to_dict(),
            "compression": described.compression,
            "environment": {
                "python": platform.python_version(),
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
                "tf2onnx": _version_of("tf2onnx"),
                "onnxruntime": _version_of("onnxruntime"),
            },
        },
    )


def _baseline(config: TrainConfig, splits: Splits, exported: Exported) -> dict[str, Any]:
    from training import baseline_profile

    raw = splits.dataset.x
    train_rows = splits.rows.get("train")
    x = {k: v[train_rows] for k, v in raw.items()} if train_rows is not None else splits.x_train
    return baseline_profile.profile(x, config.task, exported.onnx_out, splits.class_names)


def write_triton_files(model_root: Path, metadata: VersionMetadata) -> list[Path]:
    """Triton's config.pbtxt and labels.txt beside the versions, after a publish (train or
    import); a failure to write them leaves the published version as it is and says so."""
    from tfship.triton_config import write_model_files

    try:
        return write_model_files(model_root, metadata)
    except OSError as exc:
        print(f"warning: Triton's config.pbtxt not written: {exc}", file=sys.stderr)
        return []


def _version_of(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None
