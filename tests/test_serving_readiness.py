"""Readiness and refusal: corrupted versions are never served, empty repositories not ready."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
from conftest import ROOT, TrainedRepo, quiet_env, tfship_command


def test_corrupted_version_is_refused_and_reported(repo_copy: Path, start_server: Any) -> None:
    onnx = repo_copy / "digits" / "1" / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: still loads, but must not be served
    onnx.write_bytes(bytes(data))

    server = start_server(repo_copy, "--workers", "1")
    assert server.wait_answering("/healthz").status == 200
    # Loading is done once the status leaves START/LOADING (bounded: 60 s).
    deadline = time.monotonic() + 60
    while True:
        status = server.get("/v1/models/digits").json()["model_version_status"][0]
        if status["state"] not in ("START", "LOADING") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert status["state"] == "END"
    assert status["status"]["error_code"] == "DATA_LOSS"
    assert "model.onnx is corrupted: sha256" in status["status"]["error_message"]

    ready = server.get("/readyz")
    assert ready.status == 503
    assert ready.json()["ready"] is False
    (version,) = ready.json()["models"]["digits"]["versions"]
    assert version["state"] == "END" and "corrupted" in version["error"]
    assert ready.json()["models"]["digits"]["serving"] is None

    answer = server.post("/v1/models/digits:predict", {"instances": [[[[0]] * 8] * 8]})
    assert answer.status == 503
    assert (
        "model 'digits' has no available version (version 1: IntegrityError"
        in answer.json()["error"]
    )
    assert "model.onnx is corrupted" in answer.json()["error"]
    assert server.get("/healthz").status == 200


def test_empty_repository_is_alive_but_not_ready(tmp_path: Path, start_server: Any) -> None:
    server = start_server(tmp_path, "--workers", "1")
    assert server.wait_answering("/healthz").status == 200
    for _ in range(100):  # bounded: the first poll of an empty folder takes milliseconds
        ready = server.get("/readyz")
        if ready.json().get("error") != "loading models":
            break
        time.sleep(0.05)
    assert ready.status == 503
    assert ready.json() == {
        "ready": False,
        "models": {},
        "error": f"no published model found under {tmp_path}",
        "workers": {"ready": 0, "expected": 1},
    }
    # The V2 protocol answers by status code: live, but not ready (a 4xx).
    assert server.get("/v2/health/live").status == 200
    assert server.get("/v2/health/ready").status == 400


def test_serve_refuses_bad_settings_before_starting(tmp_path: Path) -> None:
    def serve(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*tfship_command(), "serve", *args],
            capture_output=True,
            text=True,
            env=quiet_env(**env),
            cwd=ROOT,
            timeout=30,
        )

    missing = serve("--model-dir", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert f"model repository {tmp_path / 'nope'} does not exist" in missing.stderr
    bad_port = serve("--model-dir", str(tmp_path), TFSHIP_REST_PORT="http")
    assert bad_port.returncode == 2
    assert "TFSHIP_REST_PORT: expected an integer, got 'http'" in bad_port.stderr
    bad_runtime = serve("--model-dir", str(tmp_path), "--model-runtime", "digits=torch")
    assert bad_runtime.returncode == 2
    assert "runtime 'torch' for model 'digits' is not one of onnx, savedmodel" in bad_runtime.stderr
    bad_workers = serve("--model-dir", str(tmp_path), "--workers", "0")
    assert bad_workers.returncode == 2 and "TFSHIP_WORKERS: must be between 1" in bad_workers.stderr


def test_not_ready_while_loading_and_requests_wait_for_the_model(
    trained_repo: TrainedRepo, start_server: Any, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    # One SavedModel worker: it answers HTTP within a second, while TensorFlow's import
    # and the model load take several more in the background.
    server = start_server(trained_repo.path, "--workers", "1", "--runtime", "savedmodel")
    assert server.wait_answering("/healthz").status == 200
    before = server.get("/readyz")
    assert before.status == 503
    assert before.json()["models"].get("digits", {"versions": []})["versions"] in (
        [],
        [{"version": 1, "state": "START"}],
        [{"version": 1, "state": "LOADING"}],
    )
    status = server.get("/v1/models/digits").json()["model_version_status"][0]
    assert status["state"] in ("START", "LOADING")
    assert status["status"] == {"error_code": "OK", "error_message": ""}

    # Sent while loading: waits for the model rather than failing.
    answer = server.post("/v1/models/digits:predict", {"instances": digits[0][:2].tolist()})
    assert answer.status == 200, answer.body
    assert len(answer.json()["predictions"]) == 2
    after = server.get("/readyz")
    assert after.status == 200
    assert after.json()["models"]["digits"]["runtime"] == "savedmodel"
    assert after.json()["models"]["digits"]["versions"] == [
        {"version": 1, "state": "AVAILABLE", "verified": True}
    ]


def test_sigterm_stops_cleanly_and_removes_the_metrics_folder(
    trained_repo: TrainedRepo, start_server: Any
) -> None:
    server = start_server(trained_repo.path, "--workers", "2")
    server.wait_ready()
    assert server.post("/v1/models/digits:predict", {"instances": [[[[0]] * 8] * 8]}).status == 200
    folder = Path(re.search(r"metrics: multi-process folder (\S+)", server.log()).group(1))  # type: ignore[union-attr]
    assert folder.is_dir() and list(folder.glob("*.db"))
    assert server.stop() == 0
    assert not folder.exists(), "the server must remove the metrics folder it created"
