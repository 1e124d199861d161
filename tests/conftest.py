"""Session fixtures: the digits demo trained once with its real config, real servers.

Everything runs as real processes: ``python -m training`` publishes into a temporary
repository, ``tfship serve`` runs gunicorn on a free loopback port.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DIGITS_CONFIG = ROOT / "training" / "configs" / "digits.yaml"
BIN = Path(sys.executable).parent


def tfship_command() -> list[str]:
    script = BIN / "tfship"
    return [str(script)] if script.exists() else [sys.executable, "-m", "tfship.cli"]


def run_tfship(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The ``tfship`` command as a user runs it, output captured."""
    return subprocess.run(
        [*tfship_command(), *args],
        capture_output=True,
        text=True,
        env=quiet_env(),
        cwd=ROOT,
        timeout=timeout,
    )


def quiet_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TFSHIP_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.update(extra)
    return env


# For runs that test something other than the quality gate (e.g. one-epoch models).
GATE_OFF = ("gate.threshold=null", "gate.tolerance=1000")


def runs_dir_for(model_dir: Path) -> Path:
    """Each test repository's run folders sit beside it, never in the checkout."""
    return model_dir.with_name(model_dir.name + "-runs")


def training_command(
    model_dir: Path, *overrides: str, config: Path = DIGITS_CONFIG, run_dir: Path | None = None
) -> list[str]:
    command = [sys.executable, "-m", "training", str(config), "--model-dir", str(model_dir)]
    command += ["--run-dir", str(run_dir or runs_dir_for(model_dir))]
    for override in overrides:
        command += ["--set", override]
    return command


def run_training(
    model_dir: Path,
    *overrides: str,
    config: Path = DIGITS_CONFIG,
    timeout: float = 300,
    run_dir: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    command = training_command(model_dir, config=config, run_dir=run_dir)
    for override in overrides:
        command += ["--set", override]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=quiet_env(), cwd=ROOT
    )


def run_python_json(code: str, *args: str, timeout: float = 120) -> Any:
    """Run a snippet in a fresh interpreter (clean sys.modules); its last line is JSON."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=quiet_env(),
        cwd=ROOT,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class TrainedRepo:
    path: Path
    seconds: float
    log: str

    @property
    def version_dir(self) -> Path:
        return self.path / "digits" / "1"

    def metadata(self) -> dict[str, Any]:
        return json.loads((self.version_dir / "metadata.json").read_text())

    def onnx_probabilities(self, x: np.ndarray) -> np.ndarray:
        """What onnxruntime in this process answers for ``x``: the reference for servers."""
        import onnxruntime as ort

        session = ort.InferenceSession(
            str(self.version_dir / "model.onnx"), providers=["CPUExecutionProvider"]
        )
        return session.run(["probabilities"], {"pixels": x})[0]


@pytest.fixture(scope="session")
def trained_repo(tmp_path_factory: pytest.TempPathFactory) -> TrainedRepo:
    repo = tmp_path_factory.mktemp("repo")
    started = time.monotonic()
    result = run_training(repo)
    seconds = time.monotonic() - started
    assert result.returncode == 0, f"training failed:\n{result.stderr[-4000:]}"
    return TrainedRepo(repo, seconds, result.stdout + result.stderr)


@pytest.fixture
def repo_copy(trained_repo: TrainedRepo, tmp_path: Path) -> Path:
    """A private copy of the trained repository, for tests that change it."""
    target = tmp_path / "repo"
    shutil.copytree(trained_repo.path, target)
    return target


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images.astype(np.float32)[..., np.newaxis], bunch.target


# --- servers ---


_PORTS_GIVEN: set[int] = set()


def free_port() -> int:
    """A port free on 127.0.0.1 now and never handed out before in this session: the kernel
    may give a just-closed port again, and a server's REST and gRPC ports asked for one after
    the other then clash (seen once in CI: both 38009, the gRPC bind failed)."""
    for _ in range(1000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _PORTS_GIVEN:
            _PORTS_GIVEN.add(port)
            return port
    raise RuntimeError("no port on 127.0.0.1 that this session has not handed out already")


@dataclass
class HttpResult:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    method: str,
    url: str,
    body: bytes | str | dict[str, Any] | None = None,
    timeout: float = 30.0,
    headers: dict[str, str] | None = None,
) -> HttpResult:
    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    request = urllib.request.Request(
        url,
        data=body,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return HttpResult(response.status, response.read(), dict(response.headers))
    except urllib.error.HTTPError as error:
        return HttpResult(error.code, error.read(), dict(error.headers))


class Server:
    def __init__(
        self,
        model_dir: Path,
        args: list[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        launcher: list[str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.grpc_port = free_port()
        self.grpc_target = f"127.0.0.1:{self.grpc_port}"
        self.log_path = log_path
        command = [
            *(launcher or tfship_command()),
            "serve",
            "--model-dir",
            str(model_dir),
            "--host",
            "127.0.0.1",
            "--rest-port",
            str(self.port),
            "--grpc-port",
            str(self.grpc_port),
            *args,
        ]
        self._log = log_path.open("wb")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=env or quiet_env(), cwd=ROOT
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_answering(self, path: str = "/healthz", timeout: float = 60.0) -> HttpResult:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"server exited with {self.process.returncode}:\n{self.log()[-4000:]}"
                )
            try:
                return http("GET", self.url + path, timeout=5)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.05)
        raise AssertionError(f"server did not answer {path} in {timeout} s:\n{self.log()[-4000:]}")

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Seconds from process start to the first 200 from /readyz."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.wait_answering("/readyz", timeout=max(1.0, deadline - time.monotonic()))
            if result.status == 200:
                return time.monotonic() - self.started
            time.sleep(0.05)
        raise AssertionError(f"server not ready in {timeout} s:\n{self.log()[-4000:]}")

    def get(self, path: str) -> HttpResult:
        return http("GET", self.url + path)

    def post(self, path: str, body: bytes | str | dict[str, Any]) -> HttpResult:
        return http("POST", self.url + path, body)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()
        return self.process.returncode


@pytest.fixture(scope="session")
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    servers: list[Server] = []

    def start(
        model_dir: Path,
        *args: str,
        env: dict[str, str] | None = None,
        launcher: list[str] | None = None,
    ) -> Server:
        log_path = tmp_path_factory.mktemp("server") / "server.log"
        server = Server(model_dir, list(args), log_path, env, launcher)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def onnx_server(trained_repo: TrainedRepo, start_server: Any) -> Server:
    server = start_server(trained_repo.path, "--workers", "2")
    server.wait_ready()
    return server


@pytest.fixture(scope="session")
def mixed_repo(trained_repo: TrainedRepo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained digits classifier beside a hand-built ONNX regression model."""
    from onnx_models import publish_linear_regression

    target = tmp_path_factory.mktemp("mixed") / "repo"
    shutil.copytree(trained_repo.path, target)
    publish_linear_regression(target)
    return target


@pytest.fixture(scope="session")
def mixed_server(mixed_repo: Path, start_server: Any) -> Server:
    server = start_server(mixed_repo, "--workers", "2")
    server.wait_ready()
    return server


@pytest.fixture(scope="session")
def savedmodel_server(trained_repo: TrainedRepo, start_server: Any) -> Server:
    # Per-model runtime choice, the way a deployment would pick TensorFlow for one model.
    server = start_server(
        trained_repo.path, "--workers", "1", "--model-runtime", "digits=savedmodel"
    )
    server.wait_ready()
    return server


# --- the example configs, trained once per session ---

EXAMPLE_CONFIGS = ROOT / "training" / "configs"
EXAMPLES = ("breast_cancer", "diabetes", "churn", "shapes", "sine_waves")


@dataclass(frozen=True)
class ExamplesRepo:
    path: Path
    logs: dict[str, str]

    def metadata(self, name: str, version: int = 1) -> dict[str, Any]:
        return json.loads((self.path / name / str(version) / "metadata.json").read_text())


@pytest.fixture(scope="session")
def examples_repo(tmp_path_factory: pytest.TempPathFactory) -> ExamplesRepo:
    repo = tmp_path_factory.mktemp("examples") / "models"
    # Two at a time, one per core: each run is mostly one busy thread (TensorFlow's import,
    # export, conversion), and each writes only its own model's and run's folders.
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = pool.map(
            lambda n: run_training(repo, config=EXAMPLE_CONFIGS / f"{n}.yaml"), EXAMPLES
        )
        logs = {}
        for name, result in zip(EXAMPLES, results, strict=True):
            assert result.returncode == 0, f"{name} failed:\n{result.stderr[-4000:]}"
            logs[name] = result.stderr
    return ExamplesRepo(repo, logs)
