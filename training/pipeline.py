"""One training run, top to bottom: data -> model -> fit -> evaluate -> export -> publish.

Nothing is visible in the repository until every step, the parity check included, has
passed: the version is assembled in a hidden staging folder and renamed into place.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import sys
import time
from pathlib import Path

from tfship.repository import (
    FORMAT_VERSION,
    ONNX_FILE,
    SAVED_MODEL_PARTS,
    VersionRef,
    digest_files,
    files_under,
    new_temp_dir,
    publish,
    remove_stale_temp_dirs,
    write_metadata,
)
from training.config import TrainConfig
from training.errors import ExportError

STAGES = 6


def _say(step: int, message: str) -> None:
    print(f"[{step}/{STAGES}] {message}", file=sys.stderr, flush=True)


def run_training(config: TrainConfig, model_dir: Path) -> VersionRef:
    started = time.monotonic()
    # TensorFlow is imported only here, after the config has been checked, so a typo in
    # the config fails in a fraction of a second rather than after TF's start-up.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    from training import data, evaluate, export, fit, model

    keras.utils.set_random_seed(config.seed)

    _say(1, f"data: loading {config.data.source}/{config.data.dataset}")
    dataset = data.load_dataset(config.data)
    splits = data.split_dataset(dataset, config.data, config.seed)
    _say(1, f"data: {dataset.description}; split {splits.sizes()} (stratified, seed {config.seed})")

    _say(2, f"model: {config.model.architecture} with {config.preprocessing.scaling} inside")
    preprocessing, preprocessing_info = model.build_preprocessing(
        config.preprocessing, splits.x_train
    )
    net = model.build_model(
        config.model, splits.x_train.shape[1:], len(splits.class_names), preprocessing
    )

    _say(
        3,
        f"fit: up to {config.fit.epochs} epochs, early stopping on "
        f"{config.fit.early_stopping.monitor}",
    )
    fit_started = time.monotonic()
    fitted = fit.fit_model(net, splits, config.fit)
    fit_seconds = time.monotonic() - fit_started

    _say(4, "evaluate: Keras model on the test split")
    keras_probs = net.predict(splits.x_test, verbose=0)
    keras_metrics = evaluate.classification_metrics(keras_probs, splits.y_test)
    _say(4, f"evaluate: test accuracy {keras_metrics['accuracy']:.4f}")

    model_root = model_dir / config.name
    for stale in remove_stale_temp_dirs(model_root):
        _say(5, f"export: removed leftover staging folder {stale.name} of an earlier run")
    staging = new_temp_dir(model_root)
    try:
        _say(5, "export: SavedModel")
        saved = export.export_saved_model(net, staging)
        _say(5, f"export: ONNX (tf2onnx, opset {config.export.onnx_opset})")
        export.convert_to_onnx(staging, config.export.onnx_opset)

        _say(5, "export: parity, ONNX Runtime vs TensorFlow on the whole test split")
        tf_probs = export.predict_saved_model(staging, splits.x_test)
        onnx_probs = export.predict_onnx(staging / ONNX_FILE, splits.x_test)
        max_diff = float(np.abs(tf_probs - onnx_probs).max())
        if not max_diff <= config.export.parity_tolerance:
            raise ExportError(
                f"ONNX output differs from TensorFlow by {max_diff:.3g} on the test split "
                f"(tolerance {config.export.parity_tolerance:g}); nothing was published"
            )
        artifacts = {
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
        metrics = {
            "keras": keras_metrics,
            "savedmodel": evaluate.classification_metrics(tf_probs, splits.y_test),
            "onnx": evaluate.classification_metrics(onnx_probs, splits.y_test),
        }

        def finalize(folder: Path, version: int) -> None:
            write_metadata(
                folder,
                {
                    "format_version": FORMAT_VERSION,
                    "name": config.name,
                    "version": version,
                    "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "task": config.task,
                    "signature_name": export.SIGNATURE_NAME,
                    "inputs": [t.to_dict() for t in saved.inputs],
                    "outputs": [t.to_dict() for t in saved.outputs],
                    "class_names": splits.class_names,
                    "preprocessing": [preprocessing_info],
                    "training_config": config.to_dict(),
                    "data": {
                        "description": splits.description,
                        "rows": splits.sizes(),
                        "seed": config.seed,
                    },
                    "training": {
                        "epochs_run": fitted.epochs_run,
                        "best_epoch": fitted.best_epoch,
                        "fit_seconds": round(fit_seconds, 2),
                        "total_seconds": round(time.monotonic() - started, 2),
                        "history": fitted.history,
                    },
                    "metrics": metrics,
                    "parity": {
                        "max_abs_diff": max_diff,
                        "tolerance": config.export.parity_tolerance,
                        "rows": len(splits.y_test),
                        "reference": "savedmodel",
                    },
                    "artifacts": artifacts,
                    "tf_serving_signature_def": saved.signature_def_json,
                    "environment": {
                        "python": platform.python_version(),
                        "tensorflow": tf.__version__,
                        "keras": keras.__version__,
                        "tf2onnx": _version_of("tf2onnx"),
                        "onnxruntime": _version_of("onnxruntime"),
                    },
                },
            )

        ref = publish(staging, model_root, finalize)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    total = time.monotonic() - started
    _say(
        6,
        f"published {ref.name} version {ref.version} at {ref.path}: test accuracy "
        f"{metrics['savedmodel']['accuracy']:.4f} (SavedModel) / "
        f"{metrics['onnx']['accuracy']:.4f} (ONNX), parity max |diff| {max_diff:.2g}, "
        f"{total:.1f} s",
    )
    return ref


def _version_of(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None
