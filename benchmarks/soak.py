"""Soak: a long run at half the measured maximum throughput; errors, memory and latency drift.

    python benchmarks/soak.py [--model-dir models] [--minutes 10] [--workers 2] [--json out.json]

1. Starts ``tfship serve`` (ONNX runtime) on a free loopback port.
2. Measures the maximum throughput for ``--probe-seconds`` with ``--clients`` closed-loop
   clients (one-row TF Serving predicts, a new connection per request as gunicorn's sync
   workers serve them).
3. Sends requests at half that rate, paced (open loop), for ``--minutes``; samples every
   worker's RSS every 10 s.
4. Prints one row per minute (requests, errors, p50, p99, RSS) and the verdict against the
   bars: zero errors, worker RSS growth under 10 % (first minute's mean to last minute's),
   p99 stable (last minute within 1.5x the first).

The load generator is Python threads on the same machine as the server, so the maximum it
finds is what this client can drive; the soak's point is the drift, measured against the
same run's first minute.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from startup import BIN, ROOT, children_rss_mib, free_port, wait_ready

BODY = ('{"instances": [' + json.dumps([[[0.0]] * 8] * 8) + "]}").encode()


def one_request(url: str) -> tuple[bool, float]:
    started = time.perf_counter()
    request = urllib.request.Request(url, data=BODY, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            ok = response.status == 200
    except (urllib.error.URLError, OSError):
        ok = False
    return ok, time.perf_counter() - started


def probe_max_rate(url: str, clients: int, seconds: float) -> float:
    count = 0
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def run() -> None:
        nonlocal count
        while time.monotonic() < deadline:
            ok, _ = one_request(url)
            if ok:
                with lock:
                    count += 1

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return count / seconds


def soak(
    url: str, rate: float, seconds: float, clients: int, master_pid: int
) -> tuple[list[tuple[float, bool, float]], list[tuple[float, float]]]:
    """Paced requests: request i is due at start + i / rate, taken by whichever client is free."""
    results: list[tuple[float, bool, float]] = []
    rss: list[tuple[float, float]] = []
    lock = threading.Lock()
    start = time.monotonic()
    end = start + seconds
    next_index = 0

    def run() -> None:
        nonlocal next_index
        while True:
            with lock:
                index = next_index
                next_index += 1
            due = start + index / rate
            if due >= end:
                return
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            ok, latency = one_request(url)
            with lock:
                results.append((due - start, ok, latency))

    threads = [threading.Thread(target=run, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    while time.monotonic() < end:
        workers = children_rss_mib(master_pid)
        if workers:
            rss.append((time.monotonic() - start, statistics.mean(workers)))
        time.sleep(min(10.0, max(0.0, end - time.monotonic())))
    for thread in threads:
        thread.join(timeout=60)
    return results, rss


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--probe-seconds", type=float, default=15.0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if not any(args.model_dir.glob("*/[0-9]*/metadata.json")):
        print(f"no published model under {args.model_dir}; run `make train` first", file=sys.stderr)
        return 2

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TFSHIP_")}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", TFSHIP_ACCESS_LOG="on")
    command = [
        str(BIN / "tfship"),
        "serve",
        "--model-dir",
        str(args.model_dir),
        "--rest-port",
        str(port),
        "--grpc-port",
        str(free_port()),
        "--workers",
        str(args.workers),
    ]
    server = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}/v1/models/digits:predict"
    try:
        try:
            wait_ready(server, port, timeout=120)
        except RuntimeError as exc:
            print(f"server never became ready: {exc}", file=sys.stderr)
            return 1
        print(f"probing the maximum rate for {args.probe_seconds:.0f} s ...", flush=True)
        maximum = probe_max_rate(url, args.clients, args.probe_seconds)
        rate = maximum / 2
        print(
            f"maximum {maximum:.0f} req/s; soaking at {rate:.0f} req/s for "
            f"{args.minutes:g} min ...",
            flush=True,
        )
        results, rss = soak(url, rate, args.minutes * 60, args.clients, server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)

    minutes = int(args.minutes) or 1
    rows = []
    print()
    print(f"{'minute':>6} {'requests':>9} {'errors':>7} {'p50 ms':>8} {'p99 ms':>8} {'RSS MiB':>8}")
    for minute in range(minutes):
        window = [r for r in results if minute * 60 <= r[0] < (minute + 1) * 60]
        latencies = [r[2] * 1000 for r in window if r[1]]
        memory = [m for t, m in rss if minute * 60 <= t < (minute + 1) * 60]
        row = {
            "minute": minute + 1,
            "requests": len(window),
            "errors": sum(1 for r in window if not r[1]),
            "p50_ms": percentile(latencies, 0.50),
            "p99_ms": percentile(latencies, 0.99),
            "rss_mib": statistics.mean(memory) if memory else float("nan"),
        }
        rows.append(row)
        print(
            f"{row['minute']:>6} {row['requests']:>9} {row['errors']:>7} {row['p50_ms']:>8.2f} "
            f"{row['p99_ms']:>8.2f} {row['rss_mib']:>8.1f}"
        )
    errors = sum(r["errors"] for r in rows)
    growth = rows[-1]["rss_mib"] / rows[0]["rss_mib"] - 1
    p99_ratio = rows[-1]["p99_ms"] / rows[0]["p99_ms"] if rows[0]["p99_ms"] else float("nan")
    verdict = {
        "max_rate": maximum,
        "soak_rate": rate,
        "requests": len(results),
        "errors": errors,
        "rss_growth": growth,
        "p99_last_over_first": p99_ratio,
        "pass": errors == 0 and growth < 0.10 and p99_ratio < 1.5,
    }
    print()
    print(
        f"requests {len(results)}, errors {errors} (bar: 0); worker RSS growth "
        f"{growth * 100:+.1f} % (bar: < 10 %); p99 last/first minute {p99_ratio:.2f}x "
        f"(bar: < 1.5x): {'PASS' if verdict['pass'] else 'FAIL'}"
    )
    if args.json:
        args.json.write_text(json.dumps({"minutes": rows, "summary": verdict}, indent=2))
    return 0 if verdict["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
