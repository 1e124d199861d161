"""Readiness and refusal: corrupted versions are never served, empty repositories not ready."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from conftest import ROOT, quiet_env, tfship_command


def test_corrupted_version_is_refused_and_reported(repo_copy: Path, start_server: Any) -> None:
    onnx = repo_copy / "digits" / "1" / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: still loads, but must not be served
    onnx.write_bytes(bytes(data))

    server = start_server(repo_copy, "--workers", "1")
    assert server.wait_answering("/healthz").status == 200
    # Loading is done once the status leaves LOADING/START.
    for _ in range(200):
        status = server.get("/v1/models/digits").json()["model_version_status"][0]
        if status["state"] not in ("START", "LOADING"):
            break
    assert status["state"] == "END"
    assert status["status"]["error_code"] == "DATA_LOSS"
    assert "model.onnx is corrupted: sha256" in status["status"]["error_message"]

    ready = server.get("/readyz")
    assert ready.status == 503
    assert ready.json()["ready"] is False
    assert ready.json()["models"]["digits"]["state"] == "END"

    answer = server.post("/v1/models/digits:predict", {"instances": [[[[0]] * 8] * 8]})
    assert answer.status == 503
    assert "failed to load" in answer.json()["error"]
    assert server.get("/healthz").status == 200


def test_empty_repository_is_alive_but_not_ready(tmp_path: Path, start_server: Any) -> None:
    server = start_server(tmp_path, "--workers", "1")
    assert server.wait_answering("/healthz").status == 200
    ready = server.get("/readyz")
    assert ready.status == 503
    assert ready.json() == {
        "ready": False,
        "models": {},
        "error": f"no published model found under {tmp_path}",
    }


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
