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
