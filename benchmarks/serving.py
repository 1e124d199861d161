"""Serving benchmark: tfship against the tutorial app and the hello-world ceiling, with wrk.

    python benchmarks/serving.py [--duration 10] [--models digits,mlp784,cnn28]
                                 [--workers 2] [--json out.json]

Needs wrk (Debian: apt-get install wrk). Everything listens on 127.0.0.1.

1. Models, trained into a temporary repository by ``tfship train`` (one or a few epochs:
   the weights do not matter for speed): ``digits`` (the 8x8 CNN of digits.yaml),
   ``mlp784`` (784 -> 512 -> 512 -> 10) and ``cnn28`` (28x28x1, Conv 96 + Conv 96: about
   2.4 ms a row on one core here; Conv 64 measured 0.9-1.2 ms, too near the 1 ms asked
   for), on random data of their shapes except digits.
2. Servers, each under gunicorn with the same worker count: (a) a hello-world Flask app
   (benchmarks/hello_app.py, the ceiling) and (b) the tutorial app
   (benchmarks/tutorial_app.py: Flask + ``InferenceSession.run``, no checks) with one
   onnxruntime thread per worker, as a competent engineer configures it (the baseline),
   and (b') the same app at onnxruntime's default threads (one per core in every worker,
   the tutorials' code as written), all on gunicorn's sync worker, which closes every
   connection after its answer, and (b'') the baseline on gunicorn's gthread worker (one
   thread), which keeps connections alive as tfship's worker does (digits and mlp784, 16
   and 64 connections); (c) ``tfship serve`` as
   a user starts it (its own worker, one thread) with the ONNX runtime and everything on
   (validation, metrics, access log), and for cnn28 (c') tfship with dynamic batching on
   (32 threads per worker) and (c'') the same 32 threads with batching off, to tell the
   two costs apart; for digits (c''') tfship with API keys on (a keys file of 20 keys, the
   client's the last) and (c'''') tfship on a foreign repository: the same digits
   model.onnx alone, in Triton's layout (``digits/0001/model.onnx``, no metadata.json),
   served unverified; and for digits tfship with drift off (``--drift-window 0``) and
   counting every row (``--drift-sample-rate 1000000000``), against tfship as started,
   whose drift scores count at most 500 rows a second per worker. (e) Where
   ``make bench-envs`` installed them (each in its own environment, pinned in
   benchmarks/envs/): KServe's Python server
   (benchmarks/kserve_app.py, its V1 protocol: the same row-format bodies), MLServer
   (benchmarks/mlserver_app.py, V2 JSON bodies) and BentoML (benchmarks/bentoml_app.py, a
   service whose numpy argument is ``instances``: the same row-format bodies at TF
   Serving's path), with ``--workers`` processes each and one onnxruntime thread per
   session, for digits and mlp784.
3. Points per model: 1 row per request at 1, 16 and 64 connections (API keys, the
   foreign model and the default-threads tutorial app: 16 and 64);
   32 rows per request at 16 connections, as TF Serving JSON and (tfship, hello world for
   its ceiling on the same bytes, and the tutorial app's binary route) as V2 binary; V2
   JSON at 1 and 32 rows, 16 connections (tfship, MLServer, hello world). wrk runs one
   thread for ``--duration`` seconds per point, with a Lua script that posts a fixed body.
4. (d) onnxruntime called in-process on the same model, in one process and in two (one
   thread each), for the rows/s a server could at best reach.

The table shows requests/s, rows/s, p50 and p99 latency, errors and the server's CPU per
request (``cpu ms``: user + system time of all its processes, from /proc, over the point's
requests), each throughput also as a ratio to (b) (``x tut``, one thread per worker) and
(a) measured in the same run, and the CPU per request as a ratio to (b)'s at the same rows
(``cpu x tut``: below 1 is less work than the tutorial app); then batching on vs off, and
each server's time from launch to ready and RSS per worker.
``--json`` keeps everything.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving_servers import KEYS, bench_env, start_servers, start_third_party
from serving_wrk import WRK_SCRIPT, run_wrk
from startup import ROOT

MODEL_CONFIGS = {
    "mlp784": """name: mlp784
data: {source: npz, path: mlp784.npz}
cleaning: {duplicates: keep}
preprocessing: {scaling: none}
model: {architecture: mlp, dense_units: [512, 512]}
fit: {epochs: 1, batch_size: 64, tensorboard: false}
gate: {threshold: null, tolerance: 1000}
""",
    "cnn28": """name: cnn28
data: {source: npz, path: cnn28.npz}
cleaning: {duplicates: keep}
preprocessing: {scaling: rescaling}
model: {architecture: cnn, conv_filters: [96, 96], dense_units: [128]}
fit: {epochs: 1, batch_size: 64, tensorboard: false}
gate: {threshold: null, tolerance: 1000}
""",
}
ROW_SHAPES = {"digits": (8, 8, 1), "mlp784": (784,), "cnn28": (28, 28, 1)}
INPUT_NAMES = {"digits": "pixels", "mlp784": "features", "cnn28": "pixels"}


@dataclass
class Point:
    model: str
    server: str
    connections: int
    rows: int
    body: str  # "json" (TF Serving rows), "v2-json" or "v2-binary"
    requests_per_s: float = 0.0
    rows_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    # The server's CPU (all its processes) per request answered.
    cpu_ms: float = 0.0


def train_models(repo: Path, models: list[str], scratch: Path) -> None:
    rng = np.random.default_rng(0)
    for name in models:
        print(f"training {name} (for its shape, not its accuracy)", file=sys.stderr, flush=True)
        if name == "digits":
            config = ROOT / "training" / "configs" / "digits.yaml"
            extra = ["fit.epochs=3", "compress.quantize=[]", "gate.threshold=null"]
        else:
            rows = 2000 if name == "mlp784" else 1000
            x = rng.random((rows, *ROW_SHAPES[name]), dtype=np.float32)
            if name == "cnn28":
                x *= 255
            np.savez(scratch / f"{name}.npz", x=x, y=rng.integers(0, 10, rows))
            config = scratch / f"{name}.yaml"
            config.write_text(MODEL_CONFIGS[name])
            extra = []
        command = [sys.executable, "-m", "training", str(config), "--model-dir", str(repo)]
        command += ["--run-dir", str(scratch / "runs")]
        for override in extra:
            command += ["--set", override]
        result = subprocess.run(command, capture_output=True, text=True, env=bench_env(), cwd=ROOT)
        if result.returncode != 0:
            sys.exit(f"training {name} failed:\n{result.stderr[-3000:]}")


def _bodies(model: str, scratch: Path) -> dict[tuple[int, str], tuple[Path, str, str]]:
    """(rows, kind) -> (body file, content type, extra header)."""
    rng = np.random.default_rng(1)
    shape = ROW_SHAPES[model]
    scale = 16.0 if model == "digits" else (255.0 if model == "cnn28" else 1.0)
    bodies = {}
    for rows in (1, 32):
        x = (rng.random((rows, *shape)) * scale).astype(np.float32)
        path = scratch / f"{model}-{rows}.json"
        # Four decimals, as a client writes them (rounded as float64: a float32 rounded
        # and widened prints 17 digits, 2.6x the bytes).
        path.write_text(json.dumps({"instances": np.round(x.astype(np.float64), 4).tolist()}))
        bodies[(rows, "json")] = (path, "application/json", "")
    for rows in (1, 32):
        x = (rng.random((rows, *shape)) * scale).astype(np.float32)
        tensor = {
            "name": INPUT_NAMES[model],
            "datatype": "FP32",
            "shape": list(x.shape),
            "data": np.round(x.astype(np.float64), 4).ravel().tolist(),
        }
        path = scratch / f"{model}-{rows}.v2.json"
        path.write_text(json.dumps({"inputs": [tensor]}))
        bodies[(rows, "v2-json")] = (path, "application/json", "")
    x = (rng.random((32, *shape)) * scale).astype(np.float32)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": INPUT_NAMES[model],
                    "datatype": "FP32",
                    "shape": list(x.shape),
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
        }
    ).encode()
    path = scratch / f"{model}-32.v2"
    path.write_bytes(header + x.tobytes())
    bodies[(32, "v2-binary")] = (
        path,
        "application/octet-stream",
        f"Inference-Header-Content-Length: {len(header)}",
    )
    return bodies


def _inprocess_worker(path: str, rows: int, seconds: float, threads: int, queue: Any) -> None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    shape = [rows, *[d if isinstance(d, int) else 1 for d in session.get_inputs()[0].shape[1:]]]
    x = np.random.default_rng(2).random(shape, dtype=np.float32)
    for _ in range(20):
        session.run(None, {name: x})
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        session.run(None, {name: x})
        done += 1
    queue.put(
        (done * rows / (time.perf_counter() - started), (time.perf_counter() - started) / done)
    )


def inprocess(path: Path, rows: int, seconds: float, processes: int) -> tuple[float, float]:
    """(rows/s over all processes, seconds per call in the first) for ``session.run``."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    threads = 1 if processes > 1 else 0
    workers = [
        context.Process(target=_inprocess_worker, args=(str(path), rows, seconds, threads, queue))
        for _ in range(processes)
    ]
    for w in workers:
        w.start()
    results = [queue.get(timeout=seconds + 120) for _ in workers]
    for w in workers:
        w.join()
    return sum(r[0] for r in results), results[0][1]


SERVERS = (
    "hello",
    "tutorial",
    "tutorial-keepalive",
    "tutorial-default",
    "tfship",
    "kserve",
    "mlserver",
    "bentoml",
    "keyed",
    "foreign",
    "drift-off",
    "drift-all-rows",
    "threaded",
    "batched",
)


def _measured(server: str, model: str, connections: int, rows: int, kind: str) -> bool:
    """Whether ``server`` runs this point: every server runs the JSON points of its model
    except where a variant of tfship only answers one question."""
    if kind == "v2-binary":  # the tutorial app: its own binary route, the same bytes
        return server in ("hello", "tfship", "tutorial")
    if kind == "v2-json":
        return server in ("hello", "tfship") or (server == "mlserver" and model != "cnn28")
    if server == "mlserver":  # V2 only
        return False
    if server in ("kserve", "bentoml"):  # the performance issue's side-by-side points
        return model != "cnn28" and connections == 16
    if server == "tutorial-default":  # the second baseline: the points users compare most
        return connections > 1
    if server == "tutorial-keepalive":  # the baseline with keep-alive: where tfship's gains are
        return model != "cnn28" and connections > 1
    if server in ("threaded", "batched"):  # batching: single rows of the heavy model
        return model == "cnn28" and rows == 1
    if server in ("keyed", "foreign"):  # API keys, foreign layout: single rows under load
        return model == "digits" and rows == 1 and connections > 1
    if server in ("drift-off", "drift-all-rows"):  # drift's cost: digits, TF Serving JSON
        return model == "digits" and kind == "json"
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per point")
    parser.add_argument("--models", default="digits,mlp784,cnn28")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in ROW_SHAPES]
    if unknown:
        print(
            f"unknown model {unknown[0]!r} (choose from {', '.join(ROW_SHAPES)})", file=sys.stderr
        )
        return 2

    points: list[Point] = []
    inproc: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="tfship-serving-bench-") as tmp:
        scratch = Path(tmp)
        repo = scratch / "models"
        train_models(repo, models, scratch)
        script = scratch / "post.lua"
        script.write_text(WRK_SCRIPT)
        for model in models:
            onnx = repo / model / "1" / "model.onnx"
            one_row_s = inprocess(onnx, 1, 3, 1)[1]
            inproc[model] = {
                "single_row_ms_one_thread": inprocess(onnx, 1, 3, 2)[1] * 1000,
                "rows_per_s_1_row": inprocess(onnx, 1, 5, 1)[0],
                "rows_per_s_32_rows": inprocess(onnx, 32, 5, 1)[0],
                "rows_per_s_32_rows_2_processes": inprocess(onnx, 32, 5, 2)[0],
                "single_row_ms_default_threads": one_row_s * 1000,
            }
        foreign = None
        if "digits" in models:  # Triton's layout: the ONNX file alone, a zero-padded folder
            foreign = scratch / "foreign"
            (foreign / "digits" / "0001").mkdir(parents=True)
            shutil.copy(repo / "digits" / "1" / "model.onnx", foreign / "digits" / "0001")
        servers = start_servers(
            repo, args.workers, scratch, "cnn28" in models, "digits" in models, foreign
        )
        servers.update(start_third_party(repo, args.workers, scratch))
        try:
            for model in models:
                bodies = _bodies(model, scratch)
                plan = [(c, 1, "json") for c in (1, 16, 64)] + [
                    (16, 32, "json"),
                    (16, 32, "v2-binary"),
                    (16, 1, "v2-json"),
                    (16, 32, "v2-json"),
                ]
                for connections, rows, kind in plan:
                    for server in SERVERS:
                        if server not in servers or not _measured(
                            server, model, connections, rows, kind
                        ):
                            continue
                        body = bodies[(rows, kind)]
                        if server == "keyed":
                            body = (body[0], body[1], f"Authorization: Bearer {KEYS[-1]}")
                        path = (
                            f"/v2/models/{model}/infer"
                            if kind.startswith("v2")
                            else f"/v1/models/{model}:predict"
                        )
                        url = f"http://127.0.0.1:{servers[server].port}{path}"
                        print(
                            f"{model} {server} c={connections} rows={rows} {kind}",
                            file=sys.stderr,
                            flush=True,
                        )
                        cpu = servers[server].cpu_seconds()
                        r = run_wrk(url, body, connections, args.duration, script)
                        cpu = servers[server].cpu_seconds() - cpu
                        seconds = r["duration_us"] / 1e6
                        point = Point(model, server, connections, rows, kind)
                        point.requests_per_s = r["requests"] / seconds
                        point.rows_per_s = point.requests_per_s * rows
                        point.p50_ms = r["p50_us"] / 1000
                        point.p99_ms = r["p99_us"] / 1000
                        point.errors = r["socket_errors"] + r["non_2xx"]
                        point.cpu_ms = cpu * 1000 / max(r["requests"], 1)
                        points.append(point)
            rss = {name: server.rss_mib for name, server in servers.items()}
            startup = {
                name: {"ready_s": server.ready_s, "worker_rss_mib": server.worker_rss_mib}
                for name, server in servers.items()
            }
        finally:
            for server in servers.values():
                server.stop()

    _print_table(points, inproc, rss, startup)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "points": [asdict(p) for p in points],
                    "inprocess": inproc,
                    "rss_mib": rss,
                    "startup": startup,
                },
                indent=1,
            )
        )
    return 0


def _print_table(
    points: list[Point],
    inproc: dict[str, dict[str, float]],
    rss: dict[str, float],
    startup: dict[str, dict[str, Any]],
) -> None:
    def find(p: Point, server: str, same_body: bool = False) -> Point | None:
        # V2 points (binary and JSON) are compared with the tutorial app's TF Serving JSON
        # ones of the same rows, what its users send; with ``same_body``, with its own
        # binary route (the same bytes).
        body = p.body if server == "hello" or same_body else "json"
        return next(
            (
                q
                for q in points
                if (q.model, q.connections, q.rows, q.server, q.body)
                == (p.model, p.connections, p.rows, server, body)
            ),
            None,
        )

    print(
        f"\n{'model':7} {'conn':>4} {'rows':>4} {'body':9} {'server':16} {'req/s':>8} "
        f"{'rows/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'cpu ms':>6} {'x tut':>6} "
        f"{'x hello':>7} {'cpu x tut':>9}"
    )
    for p in points:
        tutorial, hello = find(p, "tutorial"), find(p, "hello")
        x_tut = f"{p.rows_per_s / tutorial.rows_per_s:6.2f}" if tutorial else "     -"
        x_hello = f"{p.requests_per_s / hello.requests_per_s:7.2f}" if hello else "      -"
        # CPU per row against the tutorial app's, at the same rows per request.
        cpu_tut = f"{p.cpu_ms / tutorial.cpu_ms:9.2f}" if tutorial and tutorial.cpu_ms else ""
        print(
            f"{p.model:7} {p.connections:4} {p.rows:4} {p.body:9} {p.server:16} "
            f"{p.requests_per_s:8.0f} {p.rows_per_s:9.0f} {p.p50_ms:7.2f} {p.p99_ms:7.2f} "
            f"{p.errors:6} {p.cpu_ms:6.2f} {x_tut} {x_hello} {cpu_tut}"
        )
    print(
        "\nonnxruntime in-process (rows/s; one process with default threads, or two with one "
        "thread each)"
    )
    for model, values in inproc.items():
        print(f"  {model:7} " + ", ".join(f"{k} {v:,.1f}" for k, v in values.items()))
    batched = [p for p in points if p.server == "batched"]
    if batched:
        print(
            "\ndynamic batching, cnn28: batching on (32 threads per worker) against off, on one "
            "thread (the default) and on the same 32 threads"
        )
        for p in batched:
            for name, label in (("tfship", "1 thread, off"), ("threaded", "32 threads, off")):
                off = find(p, name)
                if off:
                    print(f"  c={p.connections:<3} vs {label:13} {_ratios(p, off)}")
    keyed = [p for p in points if p.server == "keyed"]
    if keyed:
        print("\nAPI keys on (20 keys) against off")
    for p in keyed:
        off = find(p, "tfship")
        if off:
            print(f"  {p.model} c={p.connections:<3} {_ratios(p, off)}")
    foreign = [p for p in points if p.server == "foreign"]
    if foreign:
        print("\nforeign ONNX (Triton layout, no metadata.json) against tfship's own version")
    for p in foreign:
        own = find(p, "tfship")
        if own:
            print(f"  {p.model} c={p.connections:<3} {_ratios(p, own)}")
    binary = [
        p
        for p in points
        if p.server == "tfship" and p.body == "v2-binary" and find(p, "tutorial", True)
    ]
    if binary:
        print(
            "\nV2 binary against the tutorial app's own binary route (frombuffer, run, the "
            "output's bytes; no checks), the same bytes"
        )
    for p in binary:
        other = find(p, "tutorial", True)
        assert other is not None
        print(f"  {p.model} c={p.connections:<3} rows={p.rows:<3} {_ratios(p, other)}")
    kept = [
        p
        for p in points
        if p.server == "tfship" and p.body == "json" and find(p, "tutorial-keepalive")
    ]
    if kept:
        print(
            "\ntfship against the tutorial app on gthread (keep-alive, one thread), the "
            "baseline without the sync worker's connection per request"
        )
    for p in kept:
        other = find(p, "tutorial-keepalive")
        assert other is not None
        print(f"  {p.model} c={p.connections:<3} rows={p.rows:<3} {_ratios(p, other)}")
    drift = [
        p for p in points if p.server == "tfship" and p.body == "json" and find(p, "drift-off")
    ]
    if drift:
        print(
            "\ndrift: on (the default, at most 500 rows/s per worker counted) and counting "
            "every row, against off (--drift-window 0); cpu: server CPU per request"
        )
    for p in drift:
        off = find(p, "drift-off")
        every = find(p, "drift-all-rows")
        assert off is not None
        line = f"  {p.model} c={p.connections:<3} rows={p.rows:<3} on: {_ratios(p, off)}"
        if every:
            line += f"; every row: {_ratios(every, off)}"
        print(line)
    print("\nstart-up: launch to first 200 from /readyz; RSS per worker")
    for name, values in startup.items():
        workers = ", ".join(f"{v:.0f}" for v in values["worker_rss_mib"])
        print(
            f"  {name:16} ready {values['ready_s']:.2f} s, workers {workers} MiB, "
            f"all {rss[name]:.0f} MiB ({rss[name] / rss['tutorial']:.2f}x tutorial)"
        )


def _ratios(p: Point, off: Point) -> str:
    return (
        f"req/s x{p.requests_per_s / off.requests_per_s:.2f}, "
        f"p50 x{p.p50_ms / off.p50_ms:.2f}, p99 x{p.p99_ms / off.p99_ms:.2f}"
        + (f", cpu x{p.cpu_ms / off.cpu_ms:.3f}" if off.cpu_ms else "")
    )


if __name__ == "__main__":
    sys.exit(main())
