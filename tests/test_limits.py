"""Request limits: body size (413), Content-Type (415), rows per request, NaN/Infinity policy,
JSON nesting; over REST and gRPC, on a real server started with small limits."""

from __future__ import annotations

import json
import re
import time
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import orjson
import pytest
from conftest import Server, TrainedRepo

from service.app import create_app
from service.settings import ServiceSettings

MAX_BODY = 100_000
MAX_ROWS = 50
ROW = np.zeros((8, 8, 1)).tolist()


@pytest.fixture(scope="module")
def limited(trained_repo: TrainedRepo, start_server: Any) -> Server:
    server = start_server(
        trained_repo.path,
        "--workers",
        "1",
        "--max-body-bytes",
        str(MAX_BODY),
        "--max-rows",
        str(MAX_ROWS),
    )
    server.wait_ready()
    return server


def send(
    server: Server, path: str, body: bytes, headers: dict[str, str], chunked: bool = False
) -> tuple[int, dict[str, Any]]:
    """A raw POST, so that Content-Type can be anything, or absent, and the body chunked."""
    connection = HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        if chunked:
            pieces = (body[i : i + 8192] for i in range(0, len(body), 8192))
            connection.request("POST", path, pieces, headers, encode_chunked=True)
        else:
            connection.request("POST", path, body, headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def test_body_over_the_limit_is_a_413(limited: Server) -> None:
    # One row, padded: the size is refused before any of it is parsed.
    body = json.dumps({"instances": [ROW], "pad": "x" * MAX_BODY}).encode()
    for path in ("/v1/models/digits:predict", "/v2/models/digits/infer"):
        status, answer = send(limited, path, body, {"Content-Type": "application/json"})
        assert status == 413, answer
        assert answer["error"] == (
            f"request body is {len(body)} bytes; the limit is {MAX_BODY} bytes "
            "(TFSHIP_MAX_BODY_BYTES)"
        )
    # Without Content-Length (chunked), the body is cut off at the limit as it is read.
    status, answer = send(
        limited,
        "/v1/models/digits:predict",
        body,
        {"Content-Type": "application/json"},
        chunked=True,
    )
    assert status == 413, answer
    assert "the limit is 100000 bytes (TFSHIP_MAX_BODY_BYTES)" in answer["error"]


@pytest.mark.parametrize(
    ("path", "content_type", "status"),
    [
        ("/v1/models/digits:predict", None, 200),
        ("/v1/models/digits:predict", "application/json; charset=utf-8", 200),
        ("/v1/models/digits:predict", "application/x-www-form-urlencoded", 200),  # curl -d
        ("/v1/models/digits:predict", "text/xml", 415),
        ("/v1/models/digits:predict", "application/octet-stream", 415),
        ("/v1/models/digits:classify", "multipart/form-data; boundary=x", 415),
        ("/v2/models/digits/infer", "application/octet-stream", 200),
        ("/v2/models/digits/infer", "text/plain", 415),
    ],
)
def test_content_types(limited: Server, path: str, content_type: str | None, status: int) -> None:
    if path.startswith("/v2"):
        body = {
            "inputs": [
                {"name": "pixels", "shape": [1, 8, 8, 1], "datatype": "FP32", "data": [0] * 64}
            ]
        }
    elif path.endswith(":classify"):
        body = {"examples": [{"pixels": [0] * 64}]}
    else:
        body = {"instances": [ROW]}
    headers = {"Content-Type": content_type} if content_type else {}
    got, answer = send(limited, path, json.dumps(body).encode(), headers)
    assert got == status, answer
    if status == 415:
        mimetype = content_type.split(";")[0]  # type: ignore[union-attr]
        assert answer["error"].startswith(f"Content-Type {mimetype} is not accepted here; send")


def test_rows_over_the_limit_are_refused_on_every_protocol(limited: Server) -> None:
    rows = np.zeros((MAX_ROWS + 1, 8, 8, 1), np.float32)
    message = f"request has {MAX_ROWS + 1} rows; the limit is {MAX_ROWS} per request"
    answer = limited.post("/v1/models/digits:predict", {"instances": rows.tolist()})
    assert answer.status == 400 and message in answer.json()["error"]
    infer = {
        "inputs": [
            {
                "name": "pixels",
                "shape": list(rows.shape),
                "datatype": "FP32",
                "data": rows.ravel().tolist(),
            }
        ]
    }
    answer = limited.post("/v2/models/digits/infer", infer)
    assert answer.status == 400 and message in answer.json()["error"]
    exact = limited.post("/v1/models/digits:predict", {"instances": rows[:MAX_ROWS].tolist()})
    assert exact.status == 200

    from service.codecs.grpc_protos import message as proto
    from service.codecs.tensor_proto import write_tensor

    request = proto("tensorflow.serving.PredictRequest")()
    request.model_spec.name = "digits"
    write_tensor(request.inputs["pixels"], rows)
    big = proto("tensorflow.serving.PredictRequest")()
    big.model_spec.name = "digits"
    write_tensor(big.inputs["pixels"], np.zeros((MAX_ROWS, 8, 8, 64), np.float32))
    with grpc.insecure_channel(limited.grpc_target) as channel:
        predict = channel.unary_unary(
            "/tensorflow.serving.PredictionService/Predict",
            request_serializer=type(request).SerializeToString,
            response_deserializer=proto("tensorflow.serving.PredictResponse").FromString,
        )
        with pytest.raises(grpc.RpcError) as caught:
            predict(request, timeout=30)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in caught.value.details()
        # The gRPC message limit is the body limit.
        assert big.ByteSize() > MAX_BODY
        with pytest.raises(grpc.RpcError) as caught:
            predict(big, timeout=30)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_refusals_are_counted_under_their_api(limited: Server) -> None:
    send(limited, "/v1/models/digits:predict", b"{}", {"Content-Type": "text/xml"})
    metrics = limited.get("/metrics").body.decode()
    found = re.search(
        r'tfship_requests_total\{api="predict",model="",protocol="tfserving",status="415",'
        r'version=""\} (\S+)',
        metrics,
    )
    assert found and float(found.group(1)) >= 1


def test_json_nesting_and_non_finite_messages(limited: Server) -> None:
    deep = b'{"instances": ' + b"[" * 2000 + b"]" * 2000 + b"}"
    status, answer = send(limited, "/v1/models/digits:predict", deep, {})
    assert status == 400 and "JSON nested more than 1024 levels deep" in answer["error"]
    status, answer = send(limited, "/v1/models/digits:predict", b'{"instances": [Infinity]}', {})
    assert status == 400
    assert "holds NaN or Infinity, which JSON does not allow" in answer["error"]


def _binary_infer(
    name: str, array: np.ndarray, binary_output: str | None = None
) -> tuple[bytes, dict[str, str]]:
    """A V2 infer body with ``array`` as binary input ``name`` (and one binary output)."""
    request: dict[str, Any] = {
        "inputs": [
            {
                "name": name,
                "shape": list(array.shape),
                "datatype": "FP32",
                "parameters": {"binary_data_size": array.nbytes},
            }
        ]
    }
    if binary_output:
        request["outputs"] = [{"name": binary_output, "parameters": {"binary_data": True}}]
    header = orjson.dumps(request)
    return header + array.tobytes(), {"Inference-Header-Content-Length": str(len(header))}


@pytest.mark.parametrize("policy", ["reject", "allow"])
def test_non_finite_policy(trained_repo: TrainedRepo, policy: str) -> None:
    settings = ServiceSettings(model_dir=Path(trained_repo.path), non_finite=policy)
    app = create_app(settings, load_models=False)
    app.extensions["tfship.registry"].poll()
    pixels = np.zeros((2, 8, 8, 1), np.float32)
    pixels[1, 3, 3, 0] = np.nan
    body, headers = _binary_infer("pixels", pixels, "probabilities")
    answer = app.test_client().post("/v2/models/digits/infer", data=body, headers=headers)
    if policy == "reject":
        assert answer.status_code == 400
        assert (
            "NaN and Infinity are not accepted (TFSHIP_NON_FINITE=reject)"
            in (answer.get_json()["error"])
        )
        return
    assert answer.status_code == 200
    size = int(answer.headers["Inference-Header-Content-Length"])
    scores = np.frombuffer(answer.data[size:], np.float32).reshape(2, 10)
    assert np.isfinite(scores[0]).all() and np.isnan(scores[1]).all()


@pytest.mark.parametrize("timeout", [0.3, 0.0])
def test_model_compute_is_stopped_at_the_request_timeout(tmp_path: Path, timeout: float) -> None:
    from onnx_models import SLOW_FEATURES, publish_calibrated_slow_model

    settings = ServiceSettings(model_dir=tmp_path, request_timeout_seconds=timeout)
    rows = 1000
    # Sized on this machine: five times the 0.3 s timeout, whatever the CPU's speed.
    _, compute = publish_calibrated_slow_model(
        tmp_path, rows, seconds=1.5, threads=settings.threads_per_worker()
    )
    app = create_app(settings, load_models=False)
    app.extensions["tfship.registry"].poll()
    body, headers = _binary_infer("features", np.ones((rows, SLOW_FEATURES), np.float32))
    started = time.monotonic()
    answer = app.test_client().post("/v2/models/slow/infer", data=body, headers=headers)
    seconds = time.monotonic() - started
    if timeout:
        assert answer.status_code == 504, answer.data[:300]
        assert (
            "model compute took longer than 0.3 s and was stopped" in (answer.get_json()["error"])
        )
        assert seconds < compute / 2, (seconds, compute)  # stopped, not run to the end
    else:
        assert answer.status_code == 200 and seconds > compute / 2, (seconds, compute)
    # The worker is free at once: a small request right after is answered.
    small = {
        "inputs": [
            {
                "name": "features",
                "shape": [1, SLOW_FEATURES],
                "datatype": "FP32",
                "data": [1.0] * 256,
            }
        ]
    }
    assert app.test_client().post("/v2/models/slow/infer", json=small).status_code == 200
