"""Start-up benchmark: seconds from launch to the first 200 on /readyz, and RSS per worker.

    python benchmarks/startup.py [--model-dir models] [--runs 3] [--workers 2] [--json out.json]

Three servers, each started ``--runs`` times on a free loopback port with the same
gunicorn worker count: (a) a hello-world Flask app (the baseline: gunicorn + Flask alone),
(b) ``tfship serve`` with the ONNX runtime, (c) ``tfship serve`` with the SavedModel
runtime. Figures are medians, also given as ratios to (a) from the same run, because
absolute times on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children_rss_mib(pid: int) -> list[float]:
    """RSS of the gunicorn master's worker processes."""
    rss = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":", 1) for line in status.read_text().splitlines() if ":" in line
            )
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            rss.append(int(fields["VmRSS"].split()[0]) / 1024)
    return rss


def wait_ready(
    process: subprocess.Popen[bytes], port: int, timeout: float = 180, path: str = "/readyz"
) -> None:
    """Until the server on ``port`` answers 200 on ``path``; RuntimeError if it exits or
    takes longer than ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.02)
    raise RuntimeError(f"not ready within {timeout} s: {' '.join(process.args)}")


def start_and_time(
    command: list[str], port: int, env: dict[str, str], timeout: float = 180
) -> tuple[float, list[float]]:
    started = time.monotonic()
    process = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_ready(process, port, timeout)
        seconds = time.monotonic() - started
        time.sleep(0.5)  # let every worker finish loading before measuring
        return seconds, children_rss_mib(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if not any(args.model_dir.glob("*/[0-9]*/metadata.json")):
        print(f"no published model under {args.model_dir}; run `make train` first", file=sys.stderr)
        return 2

    env = {k: v for k, v in os.environ.items() if not k.startswith("TFSHIP_")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    tfship = [
        str(BIN / "tfship"),
        "serve",
        "--model-dir",
        str(args.model_dir),
        "--host",
        "127.0.0.1",
        "--workers",
        str(args.workers),
    ]
    cases = {
        "hello-world (baseline)": lambda port: [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(args.workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--chdir",
            str(ROOT / "benchmarks"),
            "--no-control-socket",
            "hello_app:app",
        ],
        "tfship, onnx": lambda port: [
            *tfship,
            "--rest-port",
            str(port),
            "--grpc-port",
            str(free_port()),
            "--runtime",
            "onnx",
        ],
        "tfship, savedmodel": lambda port: [
            *tfship,
            "--rest-port",
            str(port),
            "--grpc-port",
            str(free_port()),
            "--runtime",
            "savedmodel",
        ],
    }
    results: dict[str, dict[str, float]] = {}
    for name, build in cases.items():
        times, rss = [], []
        for _ in range(args.runs):
            port = free_port()
            seconds, worker_rss = start_and_time(build(port), port, env)
            times.append(seconds)
            rss.extend(worker_rss)
        results[name] = {
            "ready_s": statistics.median(times),
            "worker_rss_mib": statistics.median(rss) if rss else float("nan"),
        }
        print(f"  measured {name}: {[round(t, 2) for t in times]} s", file=sys.stderr, flush=True)

    base = results["hello-world (baseline)"]
    header = (
        f"{'server':<24} {'ready (s)':>10} {'x baseline':>11} "
        f"{'RSS/worker (MiB)':>17} {'x baseline':>11}"
    )
    print(f"\nstart-up, median of {args.runs} runs, {args.workers} workers\n")
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        print(
            f"{name:<24} {r['ready_s']:>10.2f} {r['ready_s'] / base['ready_s']:>11.2f} "
            f"{r['worker_rss_mib']:>17.0f} {r['worker_rss_mib'] / base['worker_rss_mib']:>11.2f}"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"runs": args.runs, "workers": args.workers, "results": results}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
