"""Open Inference Protocol (V2) REST against a real server, driven by Triton's own client."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from conftest import Server, TrainedRepo, http

ROW = np.zeros((1, 8, 8, 1), dtype=np.float32)


@pytest.fixture(scope="module")
def client(onnx_server: Server) -> Any:
    with triton.InferenceServerClient(onnx_server.url.removeprefix("http://")) as c:
        yield c


def test_health_and_metadata_through_tritonclient(client: Any) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("digits")
    assert client.is_model_ready("digits", "1")
    server = client.get_server_metadata()
    assert server["name"] == "tfship"
    assert server["extensions"] == [
        "binary_tensor_data",
        "classification",
        "model_repository",
        "model_configuration",
        "statistics",
    ]
    assert client.get_model_metadata("digits") == {
        "name": "digits",
        "versions": ["1"],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 8, 8, 1]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}],
    }


def test_config_and_repository_index_through_tritonclient(client: Any, onnx_server: Server) -> None:
    # What Triton's tools (perf_analyzer, model analyzer) read before their first request.
    config = client.get_model_config("digits")
    assert config == client.get_model_config("digits", "1")
    assert config == {
        "name": "digits",
        "platform": "onnxruntime_onnx",
        "backend": "onnxruntime",
        "max_batch_size": 10000,  # TFSHIP_MAX_ROWS: the batch dim is left out of dims
        "input": [{"name": "pixels", "data_type": "TYPE_FP32", "dims": [8, 8, 1]}],
        "output": [
            {
                "name": "probabilities",
                "data_type": "TYPE_FP32",
                "dims": [10],
                "label_filename": "labels.txt",
            }
        ],
    }
    assert client.get_model_repository_index() == [
        {"name": "digits", "version": "1", "state": "READY", "reason": ""}
    ]
    assert onnx_server.post("/v2/repository/index", {"ready": True}).json() == (
        client.get_model_repository_index()
    )
    bad = onnx_server.post("/v2/repository/index", {"ready": "yes"})
    assert bad.status == 400 and '{"ready": true|false}' in bad.json()["error"]
    missing = onnx_server.get("/v2/models/nope/config")
    assert missing.status == 404


def test_statistics_sum_every_workers_requests(
    client: Any, onnx_server: Server, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    """Triton's statistics extension, as perf_analyzer reads it before and after a window."""

    def stats() -> dict[str, Any]:
        (found,) = client.get_inference_statistics("digits")["model_stats"]
        return found

    before = stats()
    assert (before["name"], before["version"]) == ("digits", "1")
    assert client.get_inference_statistics("digits", "1")["model_stats"] == [before]
    assert before in client.get_inference_statistics()["model_stats"]
    started_ms = time.time() * 1000
    x = digits[0][:3].tolist()
    body = {"inputs": [{"name": "pixels", "shape": [3, 8, 8, 1], "datatype": "FP32", "data": x}]}
    # One connection each: gunicorn hands them to either worker, yet any worker answers
    # for both. TF Serving's door counts as well.
    for _ in range(12):
        assert onnx_server.post("/v2/models/digits/infer", body).status == 200
    assert onnx_server.post("/v1/models/digits:predict", {"instances": x}).status == 200
    bad = {"inputs": [{"name": "pixels", "shape": [1, 8, 8, 1], "datatype": "FP32", "data": [1]}]}
    assert onnx_server.post("/v2/models/digits/infer", bad).status == 400
    after = stats()

    def delta(*path: str) -> int:
        new, old = after, before
        for key in path:
            new, old = new[key], old[key]
        return new - old

    assert delta("inference_stats", "success", "count") == 13
    assert delta("inference_stats", "fail", "count") == 1
    assert delta("inference_count") == 13 * 3  # rows
    assert delta("execution_count") == 13  # no batching: one runtime call per request
    assert delta("inference_stats", "compute_infer", "count") == 13
    compute_ns = delta("inference_stats", "compute_infer", "ns")
    assert 0 < compute_ns < delta("inference_stats", "success", "ns")
    # No batching: every request goes straight to the runtime, with no wait.
    assert delta("inference_stats", "queue", "count") == 13
    assert delta("inference_stats", "queue", "ns") == 0
    # Input and output handling is inside compute_infer's time; the counts agree, as
    # perf_analyzer requires.
    assert delta("inference_stats", "compute_input", "count") == 13
    assert after["inference_stats"]["compute_output"]["ns"] == 0
    assert started_ms - 1000 <= after["last_inference"] <= time.time() * 1000 + 1000
    missing = onnx_server.get("/v2/models/nope/stats")
    assert missing.status == 404 and "nope" in missing.json()["error"]
    assert onnx_server.get("/v2/models/digits/versions/9/stats").status == 404


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_requests_from_tritonclient(
    client: Any, trained_repo: TrainedRepo, digits: tuple[np.ndarray, np.ndarray], algorithm: str
) -> None:
    x = digits[0][:8]
    tensor = triton.InferInput("pixels", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=True)
    result = client.infer("digits", [tensor], request_compression_algorithm=algorithm)
    np.testing.assert_array_equal(
        result.as_numpy("probabilities"), trained_repo.onnx_probabilities(x)
    )


def test_health_answers_carry_json_bodies(onnx_server: Server) -> None:
    # KServe's client reads these bodies; Triton's reads the status code.
    assert onnx_server.get("/v2/health/live").json() == {"live": True}
    assert onnx_server.get("/v2/health/ready").json() == {"ready": True}
    assert onnx_server.get("/v2/models/digits/ready").json() == {"name": "digits", "ready": True}


@pytest.mark.parametrize("binary_in", [True, False])
@pytest.mark.parametrize("binary_out", [True, False])
def test_infer_through_tritonclient_equals_in_process(
    client: Any,
    trained_repo: TrainedRepo,
    digits: tuple[np.ndarray, np.ndarray],
    binary_in: bool,
    binary_out: bool,
) -> None:
    x = digits[0][:16]
    tensor = triton.InferInput("pixels", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary_in)
    output = triton.InferRequestedOutput("probabilities", binary_data=binary_out)
    result = client.infer("digits", [tensor], outputs=[output], request_id="req-42")
    expected = trained_repo.onnx_probabilities(x)
    np.testing.assert_array_equal(result.as_numpy("probabilities"), expected)
    response = result.get_response()
    assert response["id"] == "req-42"
    assert (response["model_name"], response["model_version"]) == ("digits", "1")


def test_default_outputs_come_back_binary(
    client: Any, trained_repo: TrainedRepo, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    """No outputs named: tritonclient asks for binary_data_output, and gets every output."""
    x = digits[0][20:23]
    tensor = triton.InferInput("pixels", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    result = client.infer("digits", [tensor], model_version="1")
    (out,) = result.get_response()["outputs"]
    assert out["parameters"] == {"binary_data_size": 3 * 10 * 4}
    expected = trained_repo.onnx_probabilities(x)
    np.testing.assert_array_equal(result.as_numpy("probabilities"), expected)


def test_binary_wire_format_by_hand(
    onnx_server: Server, trained_repo: TrainedRepo, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    import urllib.request

    x = digits[0][:2]
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "pixels",
                    "shape": [2, 8, 8, 1],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
        }
    ).encode()
    request = urllib.request.Request(
        onnx_server.url + "/v2/models/digits/infer",
        data=header + x.astype("<f4").tobytes(),
        headers={
            "Inference-Header-Content-Length": str(len(header)),
            "Content-Type": "application/octet-stream",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
        size = int(response.headers["Inference-Header-Content-Length"])
        assert response.headers["Content-Type"] == "application/octet-stream"
    meta = json.loads(body[:size])
    assert meta["outputs"] == [
        {
            "name": "probabilities",
            "datatype": "FP32",
            "shape": [2, 10],
            "parameters": {"binary_data_size": 80},
        }
    ]
    values = np.frombuffer(body[size:], dtype="<f4").reshape(2, 10)
    np.testing.assert_array_equal(values, trained_repo.onnx_probabilities(x))


def test_json_infer_with_nested_and_flat_data(
    onnx_server: Server, trained_repo: TrainedRepo, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x = digits[0][:2]
    expected = trained_repo.onnx_probabilities(x)
    for data in (x.tolist(), x.reshape(-1).tolist()):
        answer = onnx_server.post(
            "/v2/models/digits/versions/1/infer",
            {
                "id": "abc",
                "inputs": [
                    {"name": "pixels", "shape": [2, 8, 8, 1], "datatype": "FP32", "data": data}
                ],
            },
        )
        assert answer.status == 200, answer.body
        body = answer.json()
        assert body["id"] == "abc" and body["model_version"] == "1"
        (out,) = body["outputs"]
        assert (out["name"], out["datatype"], out["shape"]) == ("probabilities", "FP32", [2, 10])
        np.testing.assert_array_equal(
            np.asarray(out["data"], dtype=np.float32), expected.reshape(-1)
        )
    assert (
        "id"
        not in onnx_server.post(
            "/v2/models/digits/infer",
            {
                "inputs": [
                    {
                        "name": "pixels",
                        "shape": [1, 8, 8, 1],
                        "datatype": "FP32",
                        "data": ROW.reshape(-1).tolist(),
                    }
                ]
            },
        ).json()
    )


def _tensor(**overrides: Any) -> dict[str, Any]:
    tensor = {
        "name": "pixels",
        "shape": [1, 8, 8, 1],
        "datatype": "FP32",
        "data": ROW.reshape(-1).tolist(),
    }
    tensor.update(overrides)
    return {k: v for k, v in tensor.items() if v is not None}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{oops", "request body is not valid JSON"),
        ({"inputs": []}, "'inputs' must be a non-empty list of tensors"),
        (
            {"inputs": [_tensor(name="image")]},
            "inputs[0]: unknown input 'image'; the model's inputs are 'pixels'",
        ),
        ({"inputs": [_tensor(), _tensor()]}, "input 'pixels' is given twice"),
        (
            {"inputs": [_tensor(datatype="FP64")]},
            "input 'pixels': datatype FP64 does not match the model's FP32",
        ),
        ({"inputs": [_tensor(datatype="BYTES")]}, "datatype BYTES does not match the model's FP32"),
        (
            {"inputs": [_tensor(shape=[1, 8, 8])]},
            "input 'pixels': expected shape [-1, 8, 8, 1] (rank 4), got shape [1, 8, 8] (rank 3)",
        ),
        (
            {"inputs": [_tensor(shape=[1, 8, -8, 1])]},
            "'shape' must be a list of non-negative integers",
        ),
        ({"inputs": [_tensor(shape=[2, 8, 8, 1])]}, "shape [2, 8, 8, 1] needs 128 values, got 64"),
        ({"inputs": [_tensor(data=["x"] * 64)]}, "expected numbers of type float32, got strings"),
        ({"inputs": [_tensor(data=[1.0] * 63 + [True])]}, "got a boolean (true/false)"),
        ({"inputs": [_tensor(data=[1e39] * 64)]}, "values must fit float32"),
        ({"inputs": [_tensor(data=None)]}, "no 'data' and no binary_data_size parameter"),
        (
            {"inputs": [_tensor()], "outputs": [{"name": "logits"}]},
            "outputs[0]: unknown output 'logits'; the model's outputs are 'probabilities'",
        ),
        (
            {"inputs": [_tensor()], "outputs": [{"name": "probabilities"}] * 2},
            "output 'probabilities' is requested twice",
        ),
        (
            {"inputs": [_tensor(data=None, parameters={"binary_data_size": 10})]},
            "binary_data_size is 10, but shape [1, 8, 8, 1] of FP32 needs 256 bytes",
        ),
        (
            {"inputs": [_tensor(data=None, parameters={"binary_data_size": 256})]},
            "binary_data_size is 256, but only 0 bytes of binary data remain",
        ),
    ],
)
def test_bad_infer_requests_get_400(onnx_server: Server, body: Any, message: str) -> None:
    payload = body if isinstance(body, str) else json.dumps(body)
    answer = onnx_server.post("/v2/models/digits/infer", payload)
    assert answer.status == 400, answer.body
    assert list(answer.json()) == ["error"]
    assert message in answer.json()["error"]


def test_bad_binary_framing_gets_400(onnx_server: Server) -> None:
    import urllib.error
    import urllib.request

    def send(body: bytes, length: str) -> tuple[int, str]:
        request = urllib.request.Request(
            onnx_server.url + "/v2/models/digits/infer",
            data=body,
            method="POST",
            headers={"Inference-Header-Content-Length": length},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())["error"]

    header = json.dumps({"inputs": [_tensor()]}).encode()
    status, error = send(header + b"\0" * 8, str(len(header)))
    assert status == 400 and "8 bytes of binary data that no input claims" in error
    status, error = send(header, str(len(header) + 5))
    assert status == 400 and "Inference-Header-Content-Length is" in error
    status, error = send(header, "many")
    assert status == 400 and "must be an integer" in error


def test_unknown_model_and_version(onnx_server: Server) -> None:
    answer = onnx_server.post("/v2/models/ghost/infer", {"inputs": [_tensor()]})
    assert answer.status == 404
    assert answer.json() == {"error": "model 'ghost' not found (models served: digits)"}
    assert onnx_server.get("/v2/models/digits/versions/9").status == 404
    assert http("GET", onnx_server.url + "/v2/models/ghost/ready").status == 404


def test_v2_requests_are_counted_under_their_protocol(onnx_server: Server) -> None:
    def count() -> float:
        text = onnx_server.get("/metrics").body.decode()
        pattern = (
            r'^tfship_requests_total\{api="infer",model="digits",protocol="v2",'
            r'status="200",version="1"\} (\S+)$'
        )
        return sum(float(v) for v in re.findall(pattern, text, flags=re.M))

    before = count()
    for _ in range(6):
        assert onnx_server.post("/v2/models/digits/infer", {"inputs": [_tensor()]}).status == 200
    assert count() - before == 6


@pytest.mark.parametrize("binary_out", [True, False])
def test_classification_extension_through_tritonclient(
    client: Any,
    trained_repo: TrainedRepo,
    digits: tuple[np.ndarray, np.ndarray],
    binary_out: bool,
) -> None:
    x = digits[0][:4]
    tensor = triton.InferInput("pixels", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    output = triton.InferRequestedOutput("probabilities", binary_data=binary_out, class_count=3)
    result = client.infer("digits", [tensor], outputs=[output])
    classes = result.as_numpy("probabilities")
    assert classes.shape == (4, 3)
    (meta,) = result.get_response()["outputs"]
    assert (meta["datatype"], meta["shape"]) == ("BYTES", [4, 3])
    scores = trained_repo.onnx_probabilities(x)
    names = trained_repo.metadata()["class_names"]
    for row, expected in zip(classes, scores, strict=True):
        # tritonclient gives bytes for binary outputs, str for JSON ones.
        parsed = [(item.decode() if isinstance(item, bytes) else item).split(":") for item in row]
        indices = [int(index) for _, index, _ in parsed]
        assert indices == list(np.argsort(-expected, kind="stable")[:3])
        assert [label for _, _, label in parsed] == [names[i] for i in indices]
        assert [np.float32(value) for value, _, _ in parsed] == [expected[i] for i in indices]


@pytest.mark.parametrize(
    ("classification", "message"),
    [
        (11, "asks for 11 classes, the output has 10"),
        (-1, "classification must be a positive integer, got -1"),
        ("3", "classification must be a positive integer, got '3'"),
    ],
)
def test_bad_classification_requests(
    onnx_server: Server, classification: Any, message: str
) -> None:
    body = {
        "inputs": [_tensor()],
        "outputs": [{"name": "probabilities", "parameters": {"classification": classification}}],
    }
    answer = onnx_server.post("/v2/models/digits/infer", body)
    assert answer.status == 400
    assert message in answer.json()["error"]
