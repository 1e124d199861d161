"""Training benchmark: what ``tfship train`` costs over a plain Keras script, and what
pruning and quantization buy.

    python benchmarks/training.py [--runs 3] [--epochs 20] [--json out.json]

Part 1, overhead: the same digits model, data and number of epochs (early stopping off),
trained (a) by benchmarks/plain_keras_digits.py, a tutorial-style script that writes a
SavedModel and an ONNX file, (b) by ``tfship train`` with quantization off (the same
artifacts, plus checks, callbacks, parity, metadata and the report) and (c) by ``tfship
train`` as digits.yaml ships (plus the int8 variant). Runs alternate; the table shows
median wall seconds and the ratio to (a) from the same run.

Part 2, compression: digits.yaml and digits-pruned.yaml as shipped, every ONNX variant
(int8 static, int8 dynamic, fp16), with size, gzip size, test accuracy and the deltas
against the dense float model.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "training" / "configs"


def _env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def _timed(command: list[str]) -> float:
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, env=_env(), cwd=ROOT)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{result.stderr[-3000:]}")
    return seconds


def _train(config: Path, repo: Path, *overrides: str) -> list[str]:
    command = [sys.executable, "-m", "training", str(config), "--model-dir", str(repo / "models")]
    command += ["--run-dir", str(repo / "runs")]
    for override in overrides:
        command += ["--set", override]
    return command


def overhead(runs: int, epochs: int, scratch: Path) -> dict[str, list[float]]:
    fixed = (
        f"fit.epochs={epochs}",
        "fit.early_stopping.patience=100000",
        "gate.threshold=null",
        "gate.tolerance=1000",
    )
    digits = CONFIGS / "digits.yaml"
    times: dict[str, list[float]] = {
        "plain Keras script": [],
        "tfship train, no variants": [],
        "tfship train, as shipped (+int8)": [],
    }
    for i in range(runs):
        print(f"overhead run {i + 1}/{runs}", file=sys.stderr, flush=True)
        times["plain Keras script"].append(
            _timed(
                [
                    sys.executable,
                    str(ROOT / "benchmarks" / "plain_keras_digits.py"),
                    str(scratch / f"plain{i}"),
                    "--epochs",
                    str(epochs),
                ]
            )
        )
        times["tfship train, no variants"].append(
            _timed(_train(digits, scratch / f"bare{i}", *fixed, "compress.quantize=[]"))
        )
        times["tfship train, as shipped (+int8)"].append(
            _timed(_train(digits, scratch / f"full{i}", *fixed))
        )
    return times


def compression(scratch: Path) -> list[dict[str, Any]]:
    variants = "compress.quantize=[int8_static,int8_dynamic,fp16]"
    rows = []
    for config in ("digits", "digits-pruned"):
        print(f"compression: training {config}", file=sys.stderr, flush=True)
        _timed(_train(CONFIGS / f"{config}.yaml", scratch / "compress", variants))
    models = scratch / "compress" / "models"
    dense = json.loads((models / "digits" / "1" / "metadata.json").read_text())
    dense_size = dense["artifacts"]["onnx"]["size_bytes"]
    dense_gzip = dense["artifacts"]["onnx"]["gzip_bytes"]
    dense_accuracy = dense["metrics"]["onnx"]["accuracy"]
    for name in ("digits", "digits_pruned"):
        meta = json.loads((models / name / "1" / "metadata.json").read_text())
        sparsity = (meta["compression"]["pruning"] or {}).get("sparsity", 0.0)
        entries = [
            (
                "float",
                meta["artifacts"]["onnx"]["size_bytes"],
                meta["artifacts"]["onnx"]["gzip_bytes"],
                meta["metrics"]["onnx"]["accuracy"],
            )
        ]
        for variant, record in meta["compression"]["variants"].items():
            entries.append((variant, record["size_bytes"], record["gzip_bytes"], record["value"]))
        for variant, size, gzipped, accuracy in entries:
            rows.append(
                {
                    "model": name,
                    "variant": variant,
                    "sparsity": sparsity,
                    "bytes": size,
                    "gzip_bytes": gzipped,
                    "size_vs_dense": size / dense_size,
                    "gzip_vs_dense": dense_gzip / gzipped,
                    "accuracy": accuracy,
                    "points_vs_dense": (accuracy - dense_accuracy) * 100,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tfship-bench-") as tmp:
        scratch = Path(tmp)
        times = overhead(args.runs, args.epochs, scratch)
        rows = compression(scratch)

    base = statistics.median(times["plain Keras script"])
    print(f"\nTraining overhead: digits CNN, {args.epochs} epochs, median of {args.runs}")
    print(f"{'run':36} {'seconds':>8} {'x plain':>8}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:36} {median:8.1f} {median / base:8.2f}")
    print("\nCompression: test accuracy on 270 rows; ratios against dense digits model.onnx")
    print(
        f"{'model':14} {'variant':13} {'sparsity':>8} {'bytes':>9} {'size':>6} "
        f"{'gzip':>8} {'gzip /':>7} {'acc':>7} {'points':>7}"
    )
    for r in rows:
        print(
            f"{r['model']:14} {r['variant']:13} {r['sparsity']:8.2f} {r['bytes']:9,} "
            f"{r['size_vs_dense']:6.0%} {r['gzip_bytes']:8,} {r['gzip_vs_dense']:6.2f}x "
            f"{r['accuracy']:7.4f} {r['points_vs_dense']:+7.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps({"overhead_seconds": times, "compression": rows}, indent=1))


if __name__ == "__main__":
    main()
