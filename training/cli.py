"""``tfship train`` / ``python -m training``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tfship.devices import DEVICES
from training.errors import ConfigError, TrainingError


def _run_dir_argument(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=Path(os.environ.get("TFSHIP_RUN_DIR", "runs")),
        help=f"{what} (env TFSHIP_RUN_DIR; default: runs)",
    )


def _overrides_argument(parser: argparse.ArgumentParser, example: str) -> None:
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override one config key, e.g. --set {example} (repeatable)",
    )


def _model_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=Path(os.environ.get("TFSHIP_MODEL_DIR", "models")),
        help="model repository to publish into, as DIR/<name>/<version> "
        "(env TFSHIP_MODEL_DIR; default: models)",
    )


def _missing_extra(command: str, what: str) -> int | None:
    """2, with what to install, when this install has no training stack (a server install)."""
    from tfship.extras import MissingExtra, require

    try:
        require("train", what)
    except MissingExtra as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 2
    return None


def _device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        choices=DEVICES,
        help="where TensorFlow trains: cpu, cuda (refused without a GPU) or auto, the GPU "
        "when there is one (env TFSHIP_DEVICE; default: auto)",
    )


def _start_tensorflow(command: str, requested: str | None) -> int | None:
    """Import TensorFlow on the chosen device before anything else does; 2 when refused."""
    from tfship.devices import DeviceError
    from tfship.tensorflow_import import import_tensorflow

    explicit = requested or os.environ.get("TFSHIP_DEVICE", "")
    try:
        _, chosen = import_tensorflow(explicit or "auto")
    except DeviceError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 2
    # The default falls back quietly (most machines have no GPU); one asked for says so.
    if chosen.warning and explicit:
        print(f"{command}: {chosen.warning}", file=sys.stderr)
    return None


def _failed(command: str, exc: TrainingError) -> int:
    """Print why; 2 for a usage problem (the config), 1 for a run that failed."""
    print(f"{command}: {exc.kind}: {exc}", file=sys.stderr)
    return 2 if isinstance(exc, ConfigError) else 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="training config (YAML)")
    _model_dir_argument(parser)
    _run_dir_argument(
        parser,
        "where each run keeps its logs, checkpoints, backup and report, as DIR/<name>/<run id>",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="publish even if the quality gate refuses the model (the decision is recorded)",
    )
    _overrides_argument(parser, "fit.epochs=5")
    _device_argument(parser)


def run(args: argparse.Namespace) -> int:
    if (refused := _missing_extra("tfship train", "training")) is not None:
        return refused
    from training.config_file import load_config

    try:
        config = load_config(args.config, args.overrides)
    except TrainingError as exc:
        return _failed("tfship train", exc)
    if (refused := _start_tensorflow("tfship train", args.device)) is not None:
        return refused
    from training.pipeline import run_training

    try:
        run_training(config, args.model_dir, args.run_dir, force=args.force)
    except TrainingError as exc:
        return _failed("tfship train", exc)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tfship train", description="Train a model from a config and publish it."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


def add_tune_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="training config (YAML) with a tune section")
    _run_dir_argument(parser, "trial logs go to DIR/<name>/tune-<time>")
    parser.add_argument(
        "--output", type=Path, help="where to write the best config (default: in the run folder)"
    )
    parser.add_argument("--trials", type=int, help="override tune.trials")
    parser.add_argument("--timeout", type=float, help="override tune.timeout_seconds")
    _overrides_argument(parser, "tune.epochs=10")
    _device_argument(parser)


def run_tune(args: argparse.Namespace) -> int:
    if (refused := _missing_extra("tfship tune", "hyperparameter search")) is not None:
        return refused
    from training.tune import run_tuning

    if (args.trials is not None and args.trials < 1) or (
        args.timeout is not None and args.timeout <= 0
    ):
        print("tfship tune: --trials must be at least 1 and --timeout positive", file=sys.stderr)
        return 2
    if (refused := _start_tensorflow("tfship tune", args.device)) is not None:
        return refused
    try:
        run_tuning(
            args.config, args.overrides, args.run_dir, args.output, args.trials, args.timeout
        )
    except TrainingError as exc:
        return _failed("tfship tune", exc)
    return 0


def add_import_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source", type=Path, help="a .keras (or .h5) file, a SavedModel folder or an .onnx file"
    )
    parser.add_argument("--name", required=True, help="the model's name in the repository")
    _model_dir_argument(parser)
    parser.add_argument(
        "--version",
        type=int,
        help="publish as this version (default: the next one); must not exist",
    )
    parser.add_argument(
        "--calibration",
        type=Path,
        metavar="FILE.npz",
        help="rows, one array per input name (and 'labels', class indices, for the "
        "--quantize gate): for the parity check, the warm-up requests and int8 calibration "
        "(default: generated rows)",
    )
    parser.add_argument(
        "--profile-data",
        type=Path,
        metavar="FILE.npz",
        help="rows like the traffic to expect, one array per input name: metadata.json gets "
        "a baseline_profile (per-feature bins, the predicted classes) to compare traffic with",
    )
    parser.add_argument(
        "--labels",
        type=Path,
        metavar="FILE",
        help="class names, one per line, in the order of the output's scores: the model "
        "becomes a classifier (TF Serving's classify API, top-k)",
    )
    parser.add_argument(
        "--output-name",
        default="output_0",
        help="the output's name for a Keras source (default output_0, as model.export names it)",
    )
    parser.add_argument(
        "--no-onnx",
        action="store_true",
        help="publish the SavedModel alone (serve it with --model-runtime NAME=savedmodel)",
    )
    parser.add_argument(
        "--quantize",
        action="append",
        default=[],
        metavar="VARIANT",
        help="also publish model.VARIANT.onnx: int8 (static for a CNN given --calibration, "
        "else dynamic), int8_dynamic, int8_static or fp16 (repeatable); with --labels and a "
        "'labels' array in --calibration, refused if it loses over --quantize-tolerance",
    )
    parser.add_argument(
        "--quantize-tolerance",
        type=float,
        default=0.01,
        help="most accuracy a variant may lose against the float model (default 0.01)",
    )
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    parser.add_argument(
        "--parity-tolerance",
        type=float,
        default=1e-4,
        help="most ONNX may differ from TensorFlow on any output value (default 1e-4)",
    )


def run_import(args: argparse.Namespace) -> int:
    if (refused := _missing_extra("tfship import", "importing a model")) is not None:
        return refused
    if (refused := _start_tensorflow("tfship import", None)) is not None:
        return refused
    from training.import_model import import_model
    from training.import_request import ImportRequest

    request = ImportRequest(
        source=args.source,
        name=args.name,
        model_dir=args.model_dir,
        version=args.version,
        calibration=args.calibration,
        profile_data=args.profile_data,
        labels_file=args.labels,
        output_name=args.output_name,
        onnx=not args.no_onnx,
        quantize=tuple(args.quantize),
        quantize_tolerance=args.quantize_tolerance,
        opset=args.opset,
        parity_tolerance=args.parity_tolerance,
    )
    try:
        ref = import_model(request)
    except TrainingError as exc:
        return _failed("tfship import", exc)
    print(f"published {ref.name} version {ref.version} at {ref.path}")
    return 0
