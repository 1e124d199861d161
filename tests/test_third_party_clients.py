"""Other projects' clients and tools, run unchanged against real tfship servers, each from
its own environment (tests/client_envs.py): Triton's perf_analyzer over HTTP and gRPC,
KServe's REST (V1 and V2) and gRPC clients, and MLServer's ``mlserver infer``; against
tfship's own repository and a foreign one (no metadata.json)."""

from __future__ import annotations

import csv
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from client_envs import client_env, env_python, perf_analyzer
from conftest import Server, quiet_env
from foreign_models import scale_prediction, write_scale_onnx

CLIENTS = Path(__file__).parent / "clients"


@pytest.fixture(scope="module")
def triton_layout_server(start_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Server:
    """A repository as Triton users have one: ``scale/00000007/model.onnx``, nothing else."""
    repo = tmp_path_factory.mktemp("triton-layout") / "models"
    write_scale_onnx(repo / "scale" / "00000007" / "model.onnx")
    server = start_server(repo, "--workers", "2")
    server.wait_ready()
    return server


Case = tuple[Server, str, str, str, np.ndarray, np.ndarray]


@pytest.fixture(params=["tfship", "triton_layout"])
def case(request: pytest.FixtureRequest) -> Case:
    """(server, model, input, output, rows, the answer expected) on tfship's own repository
    or the Triton-layout one."""
    if request.param == "tfship":
        rows = request.getfixturevalue("digits")[0][:2]
        expected = request.getfixturevalue("trained_repo").onnx_probabilities(rows)
        server = request.getfixturevalue("onnx_server")
        return server, "digits", "pixels", "probabilities", rows, expected
    rows = np.array([[1.0, 2.0], [3.0, -4.0]], np.float32)
    server = request.getfixturevalue("triton_layout_server")
    return server, "scale", "x", "y", rows, scale_prediction(rows)


def _run_perf_analyzer(args: list[str], tmp_path: Path) -> tuple[str, dict[str, str]]:
    binary, env = perf_analyzer()
    table = tmp_path / "perf.csv"
    # Bounded: three windows of 0.3 s; any spread counts as stable, since what is checked
    # is that the tool runs and reads the server's figures, not speed.
    done = subprocess.run(
        [str(binary), *args, "--concurrency-range", "1:1", "--measurement-mode",
         "time_windows", "--measurement-interval", "300", "--max-trials", "3",
         "--stability-percentage", "100", "-f", str(table)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (row,) = csv.DictReader(table.read_text().splitlines())
    return done.stdout, row


@pytest.mark.parametrize(
    ("repository", "transport"), [("tfship", "http"), ("tfship", "grpc"), ("triton_layout", "http")]
)
def test_perf_analyzer_measures_with_server_side_figures(
    repository: str,
    transport: str,
    onnx_server: Server,
    triton_layout_server: Server,
    tmp_path: Path,
) -> None:
    """perf_analyzer reads the model configuration (shapes, max_batch_size), sends random
    inputs, and reads the statistics extension before and after each window."""
    server, model = (onnx_server, "digits") if repository == "tfship" else (
        triton_layout_server, "scale"
    )  # fmt: skip
    url = server.grpc_target if transport == "grpc" else server.url[len("http://") :]
    out, row = _run_perf_analyzer(["-m", model, "-i", transport, "-u", url], tmp_path)
    client = re.search(r"Client:\s+Request count: (\d+)", out)
    server = re.search(
        r"Server:\s+Inference count: (\d+)\s+Execution count: (\d+)\s+"
        r"Successful request count: (\d+)",
        out,
    )
    assert client and server, out  # without statistics, perf_analyzer prints no Server part
    sent = int(client.group(1))
    # The server's figures are the window's: as many requests as the client sent, batch
    # size 1, one runtime call each (the tool reads the statistics a moment apart from its
    # own window's edges, so a few requests may fall on either side).
    assert sent > 0, out
    for figure in server.groups():
        assert abs(int(figure) - sent) <= max(5, sent // 50), out
    assert float(row["Server Compute Infer"]) > 0, row
    assert float(row["Server Queue"]) == 0, row  # no batching on this server


def _kserve_calls(server: Server, model: str, name: str, rows: np.ndarray) -> dict[str, Any]:
    done = subprocess.run(
        [str(env_python("kserve")), str(CLIENTS / "kserve_calls.py"), server.url,
         server.grpc_target, model, name, "FP32", json.dumps(rows.tolist())],
        capture_output=True, text=True, env=quiet_env(), timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_kserve_clients_v1_v2_and_grpc(case: Case) -> None:
    server, model, name, output, rows, expected = case
    results = _kserve_calls(server, model, name, rows)
    for call in (
        "v1.is_server_live", "v1.is_model_ready", "v2.is_server_live", "v2.is_server_ready",
        "v2.is_model_ready", "grpc.is_server_live", "grpc.is_server_ready", "grpc.is_model_ready",
    ):  # fmt: skip
        assert results[call] == {"ok": True}, (call, results[call])
    # An unknown model: KServe's V1 client raises on the 404 (only a 503 reads as "not ready").
    assert "404" in results["v1.is_model_ready(nope)"]["error"]
    np.testing.assert_allclose(
        results["v1.infer"]["ok"]["predictions"], expected, rtol=1e-6, atol=1e-7
    )
    for call in ("v2.infer", "grpc.infer"):
        for binary in (False, True):
            answer = results[f"{call}(binary={binary})"]
            assert "ok" in answer, (call, binary, answer)
            assert answer["ok"]["id"] == "kserve-1"
            np.testing.assert_allclose(
                answer["ok"]["outputs"][output], expected, rtol=1e-6, atol=1e-7
            )
    version = "1" if model == "digits" else "7"
    assert results["grpc.infer(binary=True)"]["ok"]["model_version"] == version


def _mlserver_infer(server: Server, model: str, requests: list[dict[str, Any]], tmp_path: Path,
                    *flags: str) -> dict[str, dict[str, Any]]:  # fmt: skip
    source, answers = tmp_path / "requests.jsonl", tmp_path / "responses.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in requests))
    answers.unlink(missing_ok=True)
    mlserver = client_env("mlserver") / "bin" / "mlserver"
    done = subprocess.run(
        [str(mlserver), "infer", "-u", server.url[len("http://") :], "-m", model,
         "-i", str(source), "-o", str(answers), "-t", "rest", *flags],
        capture_output=True, text=True, env=quiet_env(), timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    lines = [json.loads(line) for line in answers.read_text().splitlines() if line.strip()]
    # Micro-batched answers lose their ids; batch_index says which request each one is.
    return {str(line["parameters"]["batch_index"]): line for line in lines}


@pytest.mark.parametrize("flags", [(), ("--batch-size", "2"), ("--binary-data",)])
def test_mlserver_infer_command(case: Case, flags: tuple[str, ...], tmp_path: Path) -> None:
    """``mlserver infer``: V2 requests from a file, one by one or micro-batched (its -s
    merges requests into one of more rows, then splits the answer)."""
    server, model, name, output, rows, expected = case
    shape = [1, *rows.shape[1:]]
    requests = [
        {"id": f"r{i}", "inputs": [{"name": name, "shape": shape, "datatype": "FP32",
                                    "data": row.ravel().tolist()}]}
        for i, row in enumerate(rows)
    ]  # fmt: skip
    answers = _mlserver_infer(server, model, requests, tmp_path, *flags)
    assert sorted(answers) == [str(i) for i in range(len(rows))]
    for i, row in enumerate(expected):
        (out,) = answers[str(i)]["outputs"]
        assert out["name"] == output and out["shape"] == [1, *row.shape]
        np.testing.assert_allclose(out["data"], row.ravel(), rtol=1e-6, atol=1e-7)
