"""The servers benchmarks/serving.py measures, on 127.0.0.1: under gunicorn, hello world,
the tutorial app (one onnxruntime thread per worker, and at onnxruntime's default threads),
and tfship plain, with API keys, with 32 threads per worker and with batching; and, where
``make bench-envs`` installed them, KServe's, MLServer's and BentoML's Python servers around
the same onnxruntime call (each in its own environment under .bench-envs/)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from newest_models import newest_onnx_files
from startup import BIN, ROOT, children_rss_mib, free_port, wait_ready


def bench_env() -> dict[str, str]:
    """The environment every benchmarked process runs in: no TFSHIP_* of the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TFSHIP_")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


# Where `make bench-envs` puts KServe's, MLServer's and BentoML's environments.
BENCH_ENVS = ROOT / ".bench-envs"


class Server:
    def __init__(
        self,
        name: str,
        command: list[str],
        port: int,
        env: dict[str, str],
        ready_path: str = "/readyz",
    ) -> None:
        self.name, self.port = name, port
        # Logs are dropped: the access log is part of tfship's work, not of the result.
        started = time.monotonic()
        self.process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_ready(self.process, port, path=ready_path)
        # Launch to the first 200 from /readyz (tfship: every model loaded and warmed up).
        self.ready_s = time.monotonic() - started
        time.sleep(1.0)  # every worker loaded and warmed up
        self.worker_rss_mib = children_rss_mib(self.process.pid)
        self.rss_mib = sum(self.worker_rss_mib)

    def cpu_seconds(self) -> float:
        """User and system CPU of the server's processes so far (master and workers, their
        threads included), for CPU per request: a figure wrk's share of the cores does not
        move as it moves throughput."""
        return process_tree_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def process_tree_cpu_seconds(root: int) -> float:
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # exited meanwhile
        # After "pid (comm)": state, ppid, ...; utime and stime are fields 14 and 15.
        fields = text[text.rindex(")") + 2 :].split()
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / tick

    def descends(pid: int) -> bool:
        while pid > 1:
            if pid == root:
                return True
            pid = parents.get(pid, 0)
        return False

    return sum(seconds for pid, seconds in times.items() if descends(pid))


def _gunicorn(app: str, port: int, workers: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--chdir",
        str(ROOT / "benchmarks"),
        "--no-control-socket",
        "--access-logfile",
        "/dev/null",
        *extra,
        app,
    ]


# cnn28 with dynamic batching: threads per worker (batching groups the requests that one
# worker's threads hold) and the model config that turns batching on.
BATCHED_THREADS = 32
BATCHING = "{max_batch_size: 32, batch_timeout_micros: 0, max_enqueued_batches: 16}"
# The keyed server's file: the client's key is the last of 20, so every one is compared.
KEYS = [f"bench-key-{i:02d}-{'0' * 24}" for i in range(20)]


def _tfship(repo: Path, port: int, workers: int, *extra: str) -> list[str]:
    return [
        str(BIN / "tfship"),
        "serve",
        "--model-dir",
        str(repo),
        "--host",
        "127.0.0.1",
        "--rest-port",
        str(port),
        "--grpc-port",
        str(free_port()),
        "--workers",
        str(workers),
        "--runtime",
        "onnx",
        *extra,
    ]


def start_servers(
    repo: Path,
    workers: int,
    scratch: Path,
    batched: bool,
    keyed: bool,
    foreign: Path | None = None,
) -> dict[str, Server]:
    env = bench_env()

    def flask_app(name: str, app: str, *extra: str, **extra_env: str) -> Server:
        port = free_port()
        return Server(name, _gunicorn(app, port, workers, *extra), port, {**env, **extra_env})

    def tfship(name: str, *extra: str, model_dir: Path = repo) -> Server:
        port = free_port()
        metrics = {"PROMETHEUS_MULTIPROC_DIR": str(scratch / f"metrics-{name}")}
        return Server(name, _tfship(model_dir, port, workers, *extra), port, {**env, **metrics})

    servers = {
        "hello": flask_app("hello", "hello_app:app"),
        # The baseline: one onnxruntime thread per worker, as a worker per core wants.
        "tutorial": flask_app(
            "tutorial", "tutorial_app:app", TUTORIAL_MODEL_DIR=str(repo), TUTORIAL_ORT_THREADS="1"
        ),
        # The baseline on gunicorn's gthread worker (one thread), which keeps connections
        # alive as tfship's worker does: the sync worker closes each one after its answer,
        # so its CPU per request includes a TCP set-up that keep-alive clients never pay.
        "tutorial-keepalive": flask_app(
            "tutorial-keepalive",
            "tutorial_app:app",
            "--worker-class",
            "gthread",
            "--threads",
            "1",
            TUTORIAL_MODEL_DIR=str(repo),
            TUTORIAL_ORT_THREADS="1",
        ),
        # The same app left at onnxruntime's default threads (one per core in every worker):
        # the tutorials' code as written, oversubscribing the cores.
        "tutorial-default": flask_app(
            "tutorial-default", "tutorial_app:app", TUTORIAL_MODEL_DIR=str(repo)
        ),
        "tfship": tfship("tfship"),
    }
    if batched:
        threads = ("--threads", str(BATCHED_THREADS))
        # The same threads without batching: what the thread pool costs, apart.
        servers["threaded"] = tfship("threaded", *threads)
        config = scratch / "batched.yaml"
        config.write_text(f"models:\n  - name: cnn28\n    batching: {BATCHING}\n")
        servers["batched"] = tfship("batched", *threads, "--model-config", str(config))
    if keyed:
        keys = scratch / "api-keys"
        keys.write_text("".join(f"{key} name=client-{i}\n" for i, key in enumerate(KEYS)))
        servers["keyed"] = tfship("keyed", "--api-keys-file", str(keys))
    if foreign is not None:
        servers["foreign"] = tfship("foreign", model_dir=foreign)
    if keyed:  # digits is served: drift's cost, off and counting every row
        servers["drift-off"] = tfship("drift-off", "--drift-window", "0")
        servers["drift-all-rows"] = tfship("drift-all-rows", "--drift-sample-rate", "1000000000")
    return servers


def third_party_envs() -> dict[str, Path]:
    """The installed environments of ``make bench-envs``: name -> its python."""
    found = {}
    for name in ("kserve", "mlserver", "bentoml"):
        python = BENCH_ENVS / name / "bin" / "python"
        if (BENCH_ENVS / name / ".installed").exists() and python.exists():
            found[name] = python
    return found


def start_third_party(repo: Path, workers: int, scratch: Path) -> dict[str, Server]:
    """KServe's, MLServer's and BentoML's servers, those installed, with ``workers``
    processes each."""
    env = {**bench_env(), "PYTHONPATH": str(ROOT / "benchmarks")}
    servers: dict[str, Server] = {}
    envs = third_party_envs()
    try:
        if "kserve" in envs:
            port = free_port()
            app = str(ROOT / "benchmarks" / "kserve_app.py")
            command = [str(envs["kserve"]), app, str(repo), str(port), str(workers)]
            servers["kserve"] = Server("kserve", command, port, env, "/v2/health/ready")
        if "mlserver" in envs:
            port = free_port()
            folder = scratch / "mlserver"
            _mlserver_settings(repo, folder, port, workers)
            command = [str(envs["mlserver"].parent / "mlserver"), "start", str(folder)]
            servers["mlserver"] = Server("mlserver", command, port, env, "/v2/health/ready")
        if "bentoml" in envs:
            port = free_port()
            command = [str(envs["bentoml"].parent / "bentoml"), "serve", "bentoml_app:OnnxService"]
            command += ["--working-dir", str(ROOT / "benchmarks"), "--host", "127.0.0.1"]
            command += ["--port", str(port)]
            # Its usage reports off: nothing here reaches the internet, and a report that
            # waits for a timeout is not the server's work.
            bento_env = {"BENTO_MODEL_DIR": str(repo), "BENTO_WORKERS": str(workers)}
            bento_env["BENTOML_DO_NOT_TRACK"] = "true"
            bento_env["BENTOML_HOME"] = str(scratch / "bentoml-home")
            servers["bentoml"] = Server("bentoml", command, port, {**env, **bento_env}, "/readyz")
    except BaseException:
        for server in servers.values():
            server.stop()
        raise
    return servers


def _mlserver_settings(repo: Path, folder: Path, port: int, workers: int) -> None:
    """MLServer's settings.json and a model-settings.json per model of the repository (its
    newest model.onnx, run by benchmarks/mlserver_app.py)."""
    folder.mkdir(parents=True, exist_ok=True)
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "parallel_workers": workers,
    }
    (folder / "settings.json").write_text(json.dumps(settings))
    for name, path in newest_onnx_files(repo).items():
        (folder / name).mkdir(exist_ok=True)
        model_settings = {
            "name": name,
            "implementation": "mlserver_app.OnnxModel",
            "parameters": {"uri": str(path)},
        }
        (folder / name / "model-settings.json").write_text(json.dumps(model_settings))
