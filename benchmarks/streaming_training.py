"""Streaming training benchmark: peak memory against the data's size, and speed against
loading the data into memory.

    python benchmarks/streaming_training.py [--shards 10] [--rows-per-shard 1000000]
                                            [--epochs 2] [--data-dir DIR] [--json out.json]

Generates CSV shards of 12 numeric and 1 categorical column with a label that depends on
them (reused from --data-dir when already there), then trains the same MLP three times,
each run a fresh ``python -m training`` process whose peak RSS is read from the kernel
(wait4's ru_maxrss):

  - in memory, one shard (data.streaming off: pandas loads the file);
  - streamed, one shard;
  - streamed, every shard (``--shards`` times the rows), through a glob.

Printed: peak RSS and its ratio to the streamed one-shard run (the target: 10x the rows
costs at most 1.25x), and fit rows/s (train rows x epochs / fit seconds, from the
metadata) with its ratio to the in-memory run (the target: within 2x, i.e. >= 0.5).
All runs hold val and test alike: ``data.sample_rows`` is set to the size of one shard's
val split, so the in-memory and the streamed one-shard runs validate on the same rows.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PLANS = ("basic", "plus", "premium", "family")
BATCH = 1024


def write_shard(path: Path, rows: int, seed: int) -> None:
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 12)).astype(np.float32)
    plan = rng.choice(PLANS, size=rows)
    logit = 1.5 * x[:, 0] - x[:, 1] + 0.5 * x[:, 2] * x[:, 3] + (plan == "premium")
    label = (logit + rng.logistic(size=rows) * 0.5 > 0).astype(int)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(12)])
    frame["plan"], frame["label"] = plan, label
    partial = path.with_suffix(".partial")
    frame.to_csv(partial, index=False, float_format="%.4f")
    partial.rename(path)  # a killed run never leaves a short shard that looks complete


def ensure_shards(folder: Path, shards: int, rows: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"part-{i:03d}-{rows}.csv" for i in range(shards)]
    missing = [p for p in paths if not p.exists()]
    if missing:
        print(f"generating {len(missing)} shards of {rows:,} rows in {folder}", file=sys.stderr)
        started = time.monotonic()
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            list(pool.map(write_shard, missing, [rows] * len(missing), range(len(missing))))
        print(f"  {time.monotonic() - started:.0f} s", file=sys.stderr)
    return paths


def config_for(path: str, streaming: bool, epochs: int, val_rows: int) -> dict[str, Any]:
    data: dict[str, Any] = {
        "source": "csv",
        "path": path,
        "label": "label",
        "categorical": ["plan"],
    }
    if streaming:
        data.update(streaming=True, sample_rows=val_rows)
    return {
        "name": "streamed" if streaming else "loaded",
        "task": "classification",
        "seed": 42,
        "data": data,
        "cleaning": {"missing": "error", "duplicates": "keep"},
        "model": {"architecture": "mlp", "dense_units": [64, 32]},
        "fit": {
            "batch_size": BATCH,
            "epochs": epochs,
            "learning_rate": 0.003,
            "early_stopping": {"patience": 1000},
        },
        "gate": {"threshold": None},
        "compress": {"quantize": []},
    }


def run(scratch: Path, label: str, config: dict[str, Any]) -> dict[str, Any]:
    folder = scratch / label.replace(" ", "-")
    folder.mkdir()
    config_file = folder / "config.yaml"
    config_file.write_text(json.dumps(config))
    command = [sys.executable, "-m", "training", str(config_file)]
    command += ["--model-dir", str(folder / "models"), "--run-dir", str(folder / "runs")]
    print(f"training: {label}", file=sys.stderr, flush=True)
    started = time.monotonic()
    with open(folder / "log.txt", "w") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
            cwd=ROOT,
        )
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{label} failed:\n{(folder / 'log.txt').read_text()[-3000:]}")
    meta = json.loads((folder / "models" / config["name"] / "1" / "metadata.json").read_text())
    training = meta["training"]
    rows = meta["data"]["rows"]
    return {
        "run": label,
        "rows": sum(rows.values()),
        "train_rows": rows["train"],
        "peak_rss_mib": usage.ru_maxrss / 1024,  # KiB on Linux
        "fit_rows_per_s": rows["train"] * training["epochs_run"] / training["fit_seconds"],
        "fit_seconds": training["fit_seconds"],
        "pass_seconds": meta["data"].get("streaming", {}).get("scan_seconds"),
        "total_seconds": seconds,
        "test_accuracy": meta["metrics"]["onnx"]["accuracy"],
        "test_rows": meta["parity"]["rows"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shards", type=int, default=10)
    parser.add_argument("--rows-per-shard", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, help="keep the generated shards here")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tfship-stream-") as tmp:
        scratch = Path(tmp)
        data_dir = args.data_dir or scratch / "data"
        paths = ensure_shards(data_dir, args.shards, args.rows_per_shard)
        one, every = str(paths[0]), str(data_dir / f"part-*-{args.rows_per_shard}.csv")
        val_rows = round(args.rows_per_shard * 0.15)
        many = f"streamed, {args.shards} shards"
        results = [
            run(scratch, "in memory, 1 shard", config_for(one, False, args.epochs, val_rows)),
            run(scratch, "streamed, 1 shard", config_for(one, True, args.epochs, val_rows)),
            run(scratch, many, config_for(every, True, args.epochs, val_rows)),
        ]
    loaded, streamed = results[0], results[1]
    print()
    print(
        "| run | rows | peak RSS MiB | x streamed 1 shard | fit rows/s | x in memory "
        "| fit s | pass s | total s | test accuracy (rows) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(
            f"| {r['run']} | {r['rows']:,} | {r['peak_rss_mib']:,.0f} | "
            f"{r['peak_rss_mib'] / streamed['peak_rss_mib']:.2f} | {r['fit_rows_per_s']:,.0f} | "
            f"{r['fit_rows_per_s'] / loaded['fit_rows_per_s']:.2f} | {r['fit_seconds']:.1f} | "
            f"{r['pass_seconds'] if r['pass_seconds'] is not None else '-'} | "
            f"{r['total_seconds']:.0f} | {r['test_accuracy']:.4f} ({r['test_rows']:,}) |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
