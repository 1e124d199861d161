"""``tfship train`` / ``python -m training``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

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


def _failed(command: str, exc: TrainingError) -> int:
    """Print why; 2 for a usage problem (the config), 1 for a run that failed."""
    print(f"{command}: {exc.kind}: {exc}", file=sys.stderr)
    return 2 if isinstance(exc, ConfigError) else 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="training config (YAML)")
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=Path(os.environ.get("TFSHIP_MODEL_DIR", "models")),
        help="model repository to publish into, as DIR/<name>/<version> "
        "(env TFSHIP_MODEL_DIR; default: models)",
    )
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


def run(args: argparse.Namespace) -> int:
    from training.config_file import load_config
    from training.pipeline import run_training

    try:
        config = load_config(args.config, args.overrides)
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


def run_tune(args: argparse.Namespace) -> int:
    from training.tune import run_tuning

    if (args.trials is not None and args.trials < 1) or (
        args.timeout is not None and args.timeout <= 0
    ):
        print("tfship tune: --trials must be at least 1 and --timeout positive", file=sys.stderr)
        return 2
    try:
        run_tuning(
            args.config, args.overrides, args.run_dir, args.output, args.trials, args.timeout
        )
    except TrainingError as exc:
        return _failed("tfship tune", exc)
    return 0
