"""``tfship predict``: send a JSON file or a .npy array to a running server, print the answer.

By default a table for people: per row the predicted class and its score (``--top-k K``:
the K best), asked of the server with tfship's ``top_k`` extension; a model that is no
classifier (the server refuses ``top_k``) gets its values instead. Scores are rounded to
four decimals there; ``--json`` prints the server's answer as it came, full precision.
Standard library + numpy only, so it runs anywhere the package is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from tfship.cli_options import api_key_argument


class ClientError(Exception):
    pass


def load_request(path: Path, columnar: bool) -> dict[str, Any]:
    """A request body from a file: .npy -> rows of the array; .json -> as is, or wrapped."""
    key = "inputs" if columnar else "instances"
    if path.suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ClientError(f"cannot read {path} as a numpy array: {exc}") from exc
        return {key: array.tolist()}
    try:
        body = json.loads(path.read_text())
    except OSError as exc:
        raise ClientError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise ClientError(f"{path} is not valid JSON: {exc}") from exc
    if isinstance(body, dict) and ("instances" in body or "inputs" in body):
        return body
    return {key: body}


def _call(
    url: str,
    path: str,
    body: dict[str, Any] | None = None,
    api_key: str | None = None,
    timeout: float = 30.0,
) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(
        url.rstrip("/") + path,
        data=json.dumps(body).encode() if body is not None else None,
        headers=headers,
        method="POST" if body is not None else "GET",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        with contextlib.suppress(ValueError, KeyError, TypeError):
            detail = json.loads(detail)["error"]
        raise ClientError(f"server answered {exc.code}: {detail}") from None
    except urllib.error.URLError as exc:
        raise ClientError(f"cannot reach {url}: {exc.reason}") from None


def predict(
    url: str,
    model: str,
    body: dict[str, Any],
    version: int | None = None,
    timeout: float = 30.0,
    api_key: str | None = None,
) -> dict[str, Any]:
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version else "") + ":predict"
    return _call(url, path, body, api_key, timeout)


def drift(url: str, api_key: str | None = None, timeout: float = 30.0) -> dict[str, Any]:
    """The server's drift scores, every feature (``GET /monitoring/drift``)."""
    return _call(url, "/monitoring/drift", None, api_key, timeout)


def _shift(score: float, threshold: float) -> str:
    if score > threshold:
        return "major"
    return "moderate" if score > 0.1 else ""


def drift_table(report: dict[str, Any]) -> None:
    """One line per version's predictions and per feature, highest first within an input."""
    threshold = float(report.get("threshold", 0.25))
    rows = []
    for entry in report.get("versions", []):
        head = [str(entry["model"]), str(entry["version"]), str(entry["window_rows"])]
        if not entry["window_rows"]:
            rows.append([*head, "-", "-", "-", "no requests yet"])
            continue
        predictions = entry.get("predictions")
        if predictions is not None:
            rows.append(
                [*head, "(predictions)", "-", f"{predictions:.3f}", _shift(predictions, threshold)]
            )
        for name, described in entry["inputs"].items():
            for feature in described["features"]:
                notes = [_shift(feature["score"], threshold)]
                if feature.get("unseen_share"):
                    notes.append(f"unseen {feature['unseen_share']:.1%}")
                if feature.get("missing_share"):
                    notes.append(f"missing {feature['missing_share']:.1%}")
                rows.append(
                    [*head, name, feature["feature"], f"{feature['score']:.3f}",
                     ", ".join(n for n in notes if n)]
                )  # fmt: skip
    if not rows:
        print("no model version with a baseline profile is served")
        return
    _print_table(["MODEL", "VERSION", "WINDOW", "INPUT", "FEATURE", "PSI", "SHIFT"], rows)
    print(
        f"\nPSI of the latest {report.get('window')} rows per version against the training "
        f"baseline; above {threshold:g} is a major shift, 0.1-{threshold:g} moderate. Few rows "
        "in the window make every score noisy."
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file",
        type=Path,
        help="request: a .json file (a body with "
        "'instances'/'inputs', or a bare list of rows) or a .npy array",
    )
    parser.add_argument("--model", required=True, help="model name")
    parser.add_argument("--version", type=int, help="model version (default: the served one)")
    parser.add_argument(
        "--url",
        default=os.environ.get("TFSHIP_URL", "http://127.0.0.1:8501"),
        help="server address (env TFSHIP_URL; default: http://127.0.0.1:8501)",
    )
    parser.add_argument(
        "--columnar",
        action="store_true",
        help="send 'inputs' (columnar) instead of 'instances' (rows)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    api_key_argument(parser)
    parser.add_argument(
        "--top-k",
        type=int,
        metavar="K",
        help="the K best classes and scores per row (default: the predicted class)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the server's JSON answer, full precision"
    )


def _class_rows(answer: dict[str, Any]) -> list[tuple[list[Any], list[float]]]:
    """(classes, scores) per row, from a top_k answer in the row or the columnar format."""
    if "predictions" in answer:
        return [(row["classes"], row["scores"]) for row in answer["predictions"]]
    outputs = answer["outputs"]
    return list(zip(outputs["classes"], outputs["scores"], strict=True))


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def class_table(answer: dict[str, Any], k: int) -> None:
    rows = []
    for index, (classes, scores) in enumerate(_class_rows(answer)):
        for rank, (label, score) in enumerate(zip(classes, scores, strict=True), start=1):
            cells = [str(index)] + ([str(rank)] if k > 1 else [])
            rows.append([*cells, str(label), f"{score:.4f}"])
    _print_table(["ROW", *(["RANK"] if k > 1 else []), "CLASS", "SCORE"], rows)


def value_table(answer: dict[str, Any]) -> None:
    """A regression (or any other) model's answer: its values per row, rounded."""
    values = answer.get("predictions", answer.get("outputs"))
    if isinstance(values, dict):  # columnar, several outputs: the first one
        values = next(iter(values.values()))
    rows = []
    for index, row in enumerate(values):
        flat = np.asarray(row, dtype=np.float64).reshape(-1)
        rows.append([str(index), ", ".join(f"{v:.4g}" for v in flat)])
    _print_table(["ROW", "VALUE"], rows)


def run(args: argparse.Namespace) -> int:
    if args.top_k is not None and args.top_k < 1:
        print("tfship predict: --top-k must be at least 1", file=sys.stderr)
        return 2
    key = args.api_key
    try:
        body = load_request(args.file, args.columnar)
        if args.json:
            asked = body if args.top_k is None else {**body, "top_k": args.top_k}
            print(
                json.dumps(
                    predict(args.url, args.model, asked, args.version, args.timeout, key),
                    indent=1,
                )
            )
            return 0
        k = args.top_k or 1
        try:
            answer = predict(
                args.url, args.model, {**body, "top_k": k}, args.version, args.timeout, key
            )
        except ClientError as exc:
            if "top_k" not in str(exc) or args.top_k is not None:
                raise
            # Not a classifier (or not tfship): its plain answer, as values.
            value_table(predict(args.url, args.model, body, args.version, args.timeout, key))
            return 0
        class_table(answer, k)
    except ClientError as exc:
        print(f"tfship predict: {exc}", file=sys.stderr)
        return 1
    return 0
