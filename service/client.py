"""``tfship predict``: send a JSON file or a .npy array to a running server, print the answer.

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


def predict(
    url: str, model: str, body: dict[str, Any], version: int | None = None, timeout: float = 30.0
) -> dict[str, Any]:
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version else "") + ":predict"
    request = urllib.request.Request(
        url.rstrip("/") + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
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


def run(args: argparse.Namespace) -> int:
    try:
        body = load_request(args.file, args.columnar)
        answer = predict(args.url, args.model, body, args.version, args.timeout)
    except ClientError as exc:
        print(f"tfship predict: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=1))
    return 0
