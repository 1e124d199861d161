"""Slow clients: ordinary requests answered while many connections dribble their headers.

    python benchmarks/slow_clients.py [--slow 200] [--duration 20] [--requests 20]
                                      [--spacing 0.3] [--threads 1] [--workers 2]

1. The digits model, trained into a temporary repository (as benchmarks/serving.py does).
2. ``tfship serve`` as a user starts it (its default worker, ``--threads`` as given), on
   127.0.0.1.
3. Baseline: ``--requests`` ordinary predict calls (1 row, a new connection each),
   ``--spacing`` seconds apart, on the idle server.
4. Attack: ``--slow`` connections that each send a request's first line, then one header
   byte every 0.1 s (a connection the server closes is opened again, so the count holds)
   for ``--duration`` seconds; from 2 s in to its end, ordinary calls ``--spacing``
   seconds apart (at least ``--requests``).

The table shows, for each phase, how many calls answered 200 (one unanswered after
10 s counts as failed), and their median and slowest latency. The target (issue #15):
all 200, none over 1 s, during 200 slow connections. ``--server-root DIR`` runs another
checkout's server (a before/after run).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import train_models
from serving_servers import bench_env
from startup import ROOT, free_port, wait_ready

BODY = json.dumps({"instances": [[[[0.0]] * 8] * 8]}).encode()
DRIBBLE_EVERY = 0.1


# A call still unanswered after this long counts as failed (status 0).
CALL_TIMEOUT = 10.0


def ordinary_calls(port: int, count: int, spacing: float) -> list[tuple[int, float]]:
    """(status, seconds) of each call; 0 for a call that failed or timed out."""
    results = []
    for _ in range(count):
        started = time.monotonic()
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=CALL_TIMEOUT)
            connection.request(
                "POST", "/v1/models/digits:predict", BODY, {"Content-Type": "application/json"}
            )
            status = connection.getresponse().status
            connection.close()
        except OSError:
            status = 0
        elapsed = time.monotonic() - started
        results.append((status, elapsed))
        time.sleep(max(0.0, spacing - elapsed))
    return results


class Dribblers:
    """``count`` connections, each sending a header byte every DRIBBLE_EVERY seconds."""

    def __init__(self, port: int, count: int) -> None:
        self.port, self.count = port, count
        self.stop = threading.Event()
        self.opened = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _open(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.sendall(b"POST /v1/models/digits:predict HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        sock.setblocking(False)
        self.opened += 1
        return sock

    def _run(self) -> None:
        sockets = [self._open() for _ in range(self.count)]
        while not self.stop.wait(DRIBBLE_EVERY):
            for index, sock in enumerate(sockets):
                try:
                    sock.send(b"a")
                except OSError:  # closed by the server (a timeout): open another
                    sock.close()
                    with contextlib.suppress(OSError):  # the next round tries again
                        sockets[index] = self._open()
        for sock in sockets:
            sock.close()

    def __enter__(self) -> Dribblers:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def summary(name: str, results: list[tuple[int, float]]) -> str:
    ok = sum(1 for status, _ in results if status == 200)
    times = [seconds for _, seconds in results]
    return (
        f"| {name} | {ok}/{len(results)} | {statistics.median(times) * 1000:.1f} "
        f"| {max(times) * 1000:.1f} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slow", type=int, default=200, help="slow connections (200)")
    parser.add_argument("--duration", type=float, default=20.0, help="attack seconds (20)")
    parser.add_argument("--requests", type=int, default=20, help="ordinary calls (20)")
    parser.add_argument("--spacing", type=float, default=0.3, help="seconds between (0.3)")
    parser.add_argument("--threads", type=int, default=1, help="TFSHIP_THREADS (1)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument("--server-root", type=Path, default=ROOT, help="checkout to serve")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tfship-slow-") as scratch:
        repo = Path(scratch) / "repo"
        train_models(repo, ["digits"], Path(scratch))
        port = free_port()
        env = {**bench_env(), "PYTHONPATH": str(args.server_root)}
        env["PROMETHEUS_MULTIPROC_DIR"] = str(Path(scratch) / "metrics")
        server = subprocess.Popen(
            [
                sys.executable, "-m", "service", "--model-dir", str(repo),
                "--host", "127.0.0.1", "--rest-port", str(port), "--grpc-port",
                str(free_port()), "--workers", str(args.workers), "--threads", str(args.threads),
            ],
            env=env, cwd=args.server_root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_ready(server, port)
            idle = ordinary_calls(port, args.requests, args.spacing)
            with Dribblers(port, args.slow) as dribblers:
                time.sleep(2.0)  # every slow connection open and dribbling
                # Calls for the whole attack, at least --requests of them: the moments
                # the server times slow connections out (and they reconnect) included.
                calls: list[tuple[int, float]] = []
                ends = time.monotonic() + args.duration - 2.0
                while len(calls) < args.requests or time.monotonic() < ends:
                    calls += ordinary_calls(port, 1, args.spacing)
            alive = server.poll() is None
        finally:
            server.terminate()
            server.wait(timeout=60)
    print(
        f"\nslow clients: {args.slow} connections, a header byte every {DRIBBLE_EVERY} s, "
        f"{args.workers} workers, --threads {args.threads}, server {args.server_root}"
    )
    print("| phase | 200s | median ms | slowest ms |\n| --- | --- | --- | --- |")
    print(summary("idle", idle))
    print(summary(f"{args.slow} slow connections", calls))
    print(f"slow connections opened in all: {dribblers.opened}; server still up: {alive}")
    return 0 if alive else 1


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
