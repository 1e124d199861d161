"""The server starts with whatever protobuf the resolver leaves beside it.

Installing another client next to tfship (``pip install "tritonclient[grpc]"``) can
downgrade protobuf below the version that grpcio-health-checking's generated code was built
with; importing that code then raises ``VersionError``, which used to kill every worker at
boot. Here a virtual environment layered on the test environment holds an older protobuf
major version, the trap is shown to be real, and a real server under it answers REST,
gRPC health and Predict.
"""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from conftest import ROOT, TrainedRepo, quiet_env


def _gencode_major() -> int:
    import importlib.util

    spec = importlib.util.find_spec("grpc_health")
    assert spec is not None and spec.submodule_search_locations
    generated = Path(next(iter(spec.submodule_search_locations))) / "v1" / "health_pb2.py"
    found = re.search(r"Protobuf Python Version: (\d+)\.", generated.read_text())
    assert found, f"{generated} names no protobuf version"
    return int(found.group(1))


@pytest.fixture(scope="module")
def older_protobuf_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    major = _gencode_major()
    venv = tmp_path_factory.mktemp("old-protobuf") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.strip()
    )  # fmt: skip
    # Everything of the test environment, behind this venv's own older protobuf.
    (site / "tfship-test-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         f"protobuf<{major}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-2000:]
    return python


def test_server_starts_and_answers_with_an_older_protobuf(
    older_protobuf_python: Path, trained_repo: TrainedRepo, start_server: Any
) -> None:
    python = str(older_protobuf_python)
    trap = subprocess.run(
        [python, "-c", "import grpc_health.v1.health_pb2"],
        capture_output=True, text=True, env=quiet_env(), timeout=60,
    )  # fmt: skip
    assert trap.returncode != 0 and "VersionError" in trap.stderr, "the trap must be real"

    server = start_server(
        trained_repo.path, "--workers", "2", launcher=[python, "-m", "tfship.cli"],
        env=quiet_env(PYTHONPATH=str(ROOT)),
    )  # fmt: skip
    server.wait_ready()
    row = np.zeros((1, 8, 8, 1)).tolist()
    assert server.post("/v1/models/digits:predict", {"instances": row}).status == 200

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from service.codecs.grpc_protos import message

    with grpc.insecure_channel(server.grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=30).status
        assert status == health_pb2.HealthCheckResponse.SERVING
        watch = health.Watch(health_pb2.HealthCheckRequest(service="digits"), timeout=30)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()
        request = message("tensorflow.serving.PredictRequest")()
        request.model_spec.name = "digits"
        pixels = request.inputs["pixels"]
        pixels.dtype = 1  # DT_FLOAT
        pixels.tensor_shape.dim.add().size = 1
        for size in (8, 8, 1):
            pixels.tensor_shape.dim.add().size = size
        pixels.float_val.append(0.0)
        predict = channel.unary_unary(
            "/tensorflow.serving.PredictionService/Predict",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=message("tensorflow.serving.PredictResponse").FromString,
        )
        response = predict(request, timeout=30)
        assert list(response.outputs["probabilities"].tensor_shape.dim)[1].size == 10
    assert "VersionError" not in server.log()
