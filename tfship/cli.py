"""The ``tfship`` command: train, serve, predict, models.

Each subcommand imports its package only when chosen, so ``tfship serve`` never loads the
training stack (TensorFlow) and ``tfship models`` starts instantly.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tfship import __version__


def _models_arguments(parser: argparse.ArgumentParser) -> None:
    import os

    parser.add_argument(
        "--model-dir",
        type=Path,
        default=Path(os.environ.get("TFSHIP_MODEL_DIR", "models")),
        help="model repository (env TFSHIP_MODEL_DIR; default: models)",
    )
    parser.add_argument(
        "--verify", action="store_true", help="check every artifact's sha256 against metadata.json"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _models_rows(args: argparse.Namespace) -> list[dict[str, object]]:
    from tfship.repository import (
        RepositoryError,
        list_models,
        read_metadata,
        verify_artifact,
    )

    rows: list[dict[str, object]] = []
    for name, versions in list_models(args.model_dir).items():
        for version in versions:
            folder = args.model_dir / name / str(version)
            row: dict[str, object] = {"model": name, "version": version, "path": str(folder)}
            try:
                metadata = read_metadata(folder)
            except RepositoryError as exc:
                row["error"] = str(exc)
                rows.append(row)
                continue
            row["created"] = metadata.created
            row["artifacts"] = sorted(metadata.artifacts)
            # The metric the quality gate judged (accuracy before gates existed).
            metric = str(metadata.record.get("quality_gate", {}).get("metric", "accuracy"))
            row["test_metric"] = metric
            row["test_metrics"] = {
                artifact: values.get(metric)
                for artifact, values in metadata.metrics.items()
                if artifact in row["artifacts"]
            }
            row["parity_max_abs_diff"] = metadata.record.get("parity", {}).get("max_abs_diff")
            if args.verify:
                problems = []
                for artifact in row["artifacts"]:
                    try:
                        verify_artifact(folder, metadata, artifact)
                    except RepositoryError as exc:
                        problems.append(str(exc))
                row["verified"] = "ok" if not problems else "; ".join(problems)
            rows.append(row)
    return rows


def _run_models(args: argparse.Namespace) -> int:
    from tfship.repository import RepositoryError

    try:
        rows = _models_rows(args)
    except RepositoryError as exc:
        print(f"tfship models: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print(f"no published model under {args.model_dir}")
        return 0
    header = ["MODEL", "VERSION", "CREATED", "ARTIFACTS", "TEST METRIC", "PARITY"]
    if args.verify:
        header.append("VERIFIED")
    table = [header]
    for row in rows:
        if "error" in row:
            table.append(
                [
                    str(row["model"]),
                    str(row["version"]),
                    "-",
                    "-",
                    "-",
                    f"unreadable: {row['error']}",
                ]
            )
            continue
        values = " ".join(
            f"{k}={v:.4f}"
            for k, v in row["test_metrics"].items()  # type: ignore[union-attr]
            if v is not None
        )
        accuracy = f"{row['test_metric']}: {values}" if values else ""
        parity = row["parity_max_abs_diff"]
        line = [
            str(row["model"]),
            str(row["version"]),
            str(row["created"]),
            ",".join(row["artifacts"]),  # type: ignore[arg-type]
            accuracy or "-",
            f"{parity:.2g}" if isinstance(parity, float) else "-",
        ]
        if args.verify:
            line.append(str(row["verified"]))
        table.append(line)
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)).rstrip())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tfship", description="Train, publish and serve TensorFlow/Keras models."
    )
    parser.add_argument("--version", action="version", version=f"tfship {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from service import cli as serve_cli
    from service import client as predict_cli
    from training import cli as train_cli

    train = commands.add_parser("train", help="train a model from a YAML config and publish it")
    train_cli.add_arguments(train)
    tune = commands.add_parser(
        "tune", help="search hyperparameters over the config's tune ranges; write the best config"
    )
    train_cli.add_tune_arguments(tune)
    serve = commands.add_parser("serve", help="serve a model repository over REST and gRPC")
    serve_cli.add_arguments(serve)
    predict = commands.add_parser("predict", help="send a request to a running server")
    predict_cli.add_arguments(predict)
    models = commands.add_parser("models", help="list the model repository")
    _models_arguments(models)

    args = parser.parse_args(argv)
    handlers = {
        "train": train_cli.run,
        "tune": train_cli.run_tune,
        "serve": serve_cli.run,
        "predict": predict_cli.run,
        "models": _run_models,
    }
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
