"""``tfship train`` / ``python -m training``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="training config (YAML)")
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=Path(os.environ.get("TFSHIP_MODEL_DIR", "models")),
        help="model repository to publish into, as DIR/<name>/<version> "
        "(env TFSHIP_MODEL_DIR; default: models)",
    )
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=Path(os.environ.get("TFSHIP_RUN_DIR", "runs")),
        help="where each run keeps its logs, checkpoints, backup and report, as "
        "DIR/<name>/<run id> (env TFSHIP_RUN_DIR; default: runs)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="publish even if the quality gate refuses the model (the decision is recorded)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key, e.g. --set fit.epochs=5 (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    from training.config import load_config
    from training.errors import ConfigError, TrainingError
    from training.pipeline import run_training

    try:
        config = load_config(args.config, args.overrides)
        run_training(config, args.model_dir, args.run_dir, force=args.force)
    except TrainingError as exc:
        print(f"tfship train: {exc.kind}: {exc}", file=sys.stderr)
        # 2 for a usage problem (the config), 1 for a run that failed.
        return 2 if isinstance(exc, ConfigError) else 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tfship train", description="Train a model from a config and publish it."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


def add_tune_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="training config (YAML) with a tune section")
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=Path(os.environ.get("TFSHIP_RUN_DIR", "runs")),
        help="trial logs go to DIR/<name>/tune-<time> (env TFSHIP_RUN_DIR; default: runs)",
    )
    parser.add_argument(
        "--output", type=Path, help="where to write the best config (default: in the run folder)"
    )
    parser.add_argument("--trials", type=int, help="override tune.trials")
    parser.add_argument("--timeout", type=float, help="override tune.timeout_seconds")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key, e.g. --set tune.epochs=10 (repeatable)",
    )


def run_tune(args: argparse.Namespace) -> int:
    from training.errors import ConfigError, TrainingError
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
        print(f"tfship tune: {exc.kind}: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    return 0
