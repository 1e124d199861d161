"""The ``tfship`` command: train, tune, serve, predict, models, import.

Each subcommand imports its package only when chosen, so ``tfship serve`` never loads the
training stack (TensorFlow) and ``tfship models`` starts instantly.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tfship import __version__
from tfship.cli_options import api_key_argument


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
    parser.add_argument(
        "--drift",
        metavar="URL",
        help="instead of the repository, a running server's drift scores per feature "
        "(e.g. http://127.0.0.1:8501)",
    )
    api_key_argument(parser, "with --drift: ")


def _run_drift(args: argparse.Namespace) -> int:
    from service.client import ClientError, drift, drift_table

    try:
        report = drift(args.drift, args.api_key)
    except ClientError as exc:
        print(f"tfship models --drift: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        drift_table(report)
    return 0


def _models_rows(args: argparse.Namespace) -> list[dict[str, object]]:
    from tfship.repository import (
        RepositoryError,
        foreign_artifacts,
        has_metadata,
        list_models,
        read_metadata,
        verify_artifact,
        version_folders,
    )

    rows: list[dict[str, object]] = []
    for name in list_models(args.model_dir):
        for version, folder in version_folders(args.model_dir / name).items():
            row: dict[str, object] = {"model": name, "version": version, "path": str(folder)}
            if not has_metadata(folder):
                # TF Serving's or Triton's layout: served as found, nothing to check.
                row["artifacts"] = foreign_artifacts(folder)
                row["verified"] = "unverified: no metadata.json, no checksums"
                if not row["artifacts"]:
                    row["error"] = f"{folder} holds no metadata.json, saved_model.pb or model.onnx"
                rows.append(row)
                continue
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
                for artifact in row["artifacts"]:  # type: ignore[union-attr]
                    try:
                        verify_artifact(folder, metadata, artifact)
                    except RepositoryError as exc:
                        problems.append(str(exc))
                row["verified"] = "ok" if not problems else "; ".join(problems)
            rows.append(row)
    return rows


def _table_line(row: dict[str, object], verify: bool) -> list[str]:
    """One row of the ``tfship models`` table, as many cells as the header has."""
    head = [str(row["model"]), str(row["version"])]
    if "error" in row:
        return [*head, "-", "-", "-", f"unreadable: {row['error']}"] + (["-"] * verify)
    if "created" not in row:  # a foreign version
        artifacts = ",".join(row["artifacts"])  # type: ignore[arg-type]
        return [*head, "-", artifacts, "-", "-"] + ([str(row["verified"])] if verify else [])
    values = " ".join(
        f"{k}={v:.4f}"
        for k, v in row["test_metrics"].items()  # type: ignore[union-attr]
        if v is not None
    )
    accuracy = f"{row['test_metric']}: {values}" if values else ""
    parity = row["parity_max_abs_diff"]
    line = [
        *head,
        str(row["created"]),
        ",".join(row["artifacts"]),  # type: ignore[arg-type]
        accuracy or "-",
        f"{parity:.2g}" if isinstance(parity, float) else "-",
    ]
    return line + ([str(row["verified"])] if verify else [])


def _run_models(args: argparse.Namespace) -> int:
    from tfship.repository import RepositoryError

    if args.drift:
        return _run_drift(args)
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
    table = [header] + [_table_line(row, args.verify) for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    unverified = sum(1 for row in rows if "created" not in row and "error" not in row)
    if unverified:
        print(
            f"\n{unverified} version(s) without metadata.json (TF Serving or Triton layout): "
            "served unverified, no checksum covers their files; `tfship import` publishes "
            "one with checksums"
        )
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
    imported = commands.add_parser(
        "import",
        help="publish a .keras, SavedModel or ONNX model as a verified version",
    )
    train_cli.add_import_arguments(imported)

    args = parser.parse_args(argv)
    handlers = {
        "train": train_cli.run,
        "tune": train_cli.run_tune,
        "serve": serve_cli.run,
        "predict": predict_cli.run,
        "models": _run_models,
        "import": train_cli.run_import,
    }
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
