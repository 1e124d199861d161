"""Open Inference Protocol over gRPC, driven by Triton's own client (``tritonclient.grpc``)
against real gunicorn workers, on the same port as TF Serving's gRPC services."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
from conftest import Server, TrainedRepo
from onnx_models import linear_prediction

triton = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

from service.codecs.v2_grpc_protos import message  # noqa: E402


@pytest.fixture(scope="module")
def client(mixed_server: Server) -> Iterator[Any]:
    with triton.InferenceServerClient(mixed_server.grpc_target) as opened:
        yield opened


def test_health_and_metadata(client: Any) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("digits") and client.is_model_ready("digits", "1")
    server = client.get_server_metadata(as_json=True)
    assert server["name"] == "tfship"
    assert "model_repository" in server["extensions"]
    metadata = client.get_model_metadata("digits", as_json=True)
    assert metadata == {
        "name": "digits",
        "versions": ["1"],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "pixels", "datatype": "FP32", "shape": ["-1", "8", "8", "1"]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": ["-1", "10"]}],
    }


def test_config_and_repository_index(client: Any) -> None:
    config = client.get_model_config("digits", as_json=True)["config"]
    assert (config["name"], config["platform"], config["backend"]) == (
        "digits",
        "onnxruntime_onnx",
        "onnxruntime",
    )
    assert config["max_batch_size"] == 10000
    (pixels,) = config["input"]
    assert (pixels["name"], pixels["data_type"], pixels["dims"]) == (
        "pixels",
        "TYPE_FP32",
        ["8", "8", "1"],
    )
    (scores,) = config["output"]
    assert scores["label_filename"] == "labels.txt" and scores["dims"] == ["10"]
    linear = client.get_model_config("linear", as_json=True)["config"]
    assert linear["output"][0]["dims"] == ["1"]  # [-1, 1]: one value per row
    index = client.get_model_repository_index(as_json=True)["models"]
    assert sorted((m["name"], m["version"], m["state"]) for m in index) == [
        ("digits", "1", "READY"),
        ("linear", "1", "READY"),
    ]


def test_infer_equals_in_process(
    client: Any, trained_repo: TrainedRepo, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x = digits[0][:16]
    tensor = triton.InferInput("pixels", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)  # raw_input_contents, as tritonclient sends
    top = triton.InferRequestedOutput("probabilities", class_count=3)
    result = client.infer("digits", [tensor], request_id="grpc-7")
    np.testing.assert_array_equal(
        result.as_numpy("probabilities"), trained_repo.onnx_probabilities(x)
    )
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == ("digits", "1", "grpc-7")
    # Triton's classification extension: "value:index:label", best first.
    best = client.infer("digits", [tensor], outputs=[top]).as_numpy("probabilities")
    assert best.shape == (16, 3)
    expected = trained_repo.onnx_probabilities(x).argmax(axis=1)
    assert [int(row[0].decode().split(":")[1]) for row in best] == expected.tolist()


def test_statistics(client: Any, digits: tuple[np.ndarray, np.ndarray]) -> None:
    def stats() -> Any:
        (found,) = client.get_inference_statistics("digits").model_stats
        return found

    before = stats()
    tensor = triton.InferInput("pixels", [2, 8, 8, 1], "FP32")
    tensor.set_data_from_numpy(digits[0][:2])
    for _ in range(5):
        client.infer("digits", [tensor])
    after = stats()
    assert (after.name, after.version) == ("digits", "1")
    success = after.inference_stats.success.count - before.inference_stats.success.count
    assert success == 5
    assert after.inference_count - before.inference_count == 10
    assert after.execution_count - before.execution_count == 5
    assert after.inference_stats.compute_infer.ns > before.inference_stats.compute_infer.ns
    names = {s.name for s in client.get_inference_statistics().model_stats}
    assert names == {"digits", "linear"}
    with pytest.raises(InferenceServerException, match="version 9 of model 'digits'"):
        client.get_inference_statistics("digits", "9")


def test_typed_contents_and_versions(mixed_server: Server) -> None:
    """Typed ``contents`` (what KServe's and hand-written clients send) on a raw channel."""
    rows = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]], np.float32)
    request = message("ModelInferRequest")(model_name="linear", model_version="1")
    tensor = request.inputs.add(name="features", datatype="FP32", shape=[2, 3])
    tensor.contents.fp32_contents.extend(rows.ravel().tolist())
    with grpc.insecure_channel(mixed_server.grpc_target) as channel:
        infer = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=message("ModelInferResponse").FromString,
        )
        response = infer(request, timeout=30)
    (output,) = response.outputs
    values = np.frombuffer(response.raw_output_contents[0], np.float32).reshape(output.shape)
    np.testing.assert_allclose(values.reshape(-1), linear_prediction(rows))


@pytest.mark.parametrize(
    ("change", "code", "needle"),
    [
        ({"model": "nope"}, "NOT_FOUND", "model 'nope' not found"),
        ({"version": "9"}, "NOT_FOUND", "version 9 of model 'digits'"),
        ({"version": "x1"}, "INVALID_ARGUMENT", "model_version 'x1' must be empty"),
        ({"datatype": "FP64"}, "INVALID_ARGUMENT", "datatype FP64 does not match the model's"),
        ({"shape": [1, 8, 8]}, "INVALID_ARGUMENT", "input 'pixels'"),
        ({"name": "pix"}, "INVALID_ARGUMENT", "unknown input 'pix'"),
    ],
)
def test_errors_have_their_grpc_codes(
    client: Any, change: dict[str, Any], code: str, needle: str
) -> None:
    x = np.zeros((1, 8, 8, 1), np.float32)
    if "datatype" in change:
        x = x.astype(np.float64)
    tensor = triton.InferInput(
        change.get("name", "pixels"),
        change.get("shape", list(x.shape)),
        change.get("datatype", "FP32"),
    )
    tensor.set_data_from_numpy(x.reshape(change["shape"]) if "shape" in change else x)
    with pytest.raises(InferenceServerException) as caught:
        client.infer(
            change.get("model", "digits"), [tensor], model_version=change.get("version", "")
        )
    assert caught.value.status() == f"StatusCode.{code}"
    assert needle in caught.value.message()


def test_a_tiny_request_declaring_a_huge_tensor_is_refused_at_once(mixed_server: Server) -> None:
    request = message("ModelInferRequest")(model_name="digits")
    request.inputs.add(name="pixels", datatype="FP32", shape=[1 << 22, 8, 8, 1])
    request.raw_input_contents.append(b"\0\0\0\0")
    with grpc.insecure_channel(mixed_server.grpc_target) as channel:
        infer = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=message("ModelInferResponse").FromString,
        )
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as caught:
            infer(request, timeout=30)
        elapsed = time.monotonic() - started
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request has 4194304 rows; the limit is 10000" in caught.value.details()
    assert elapsed < 5  # checked before anything is allocated (bound for a loaded CI box)


def test_v2_grpc_calls_are_counted(client: Any, mixed_server: Server) -> None:
    tensor = triton.InferInput("features", [1, 3], "FP32")
    tensor.set_data_from_numpy(np.ones((1, 3), np.float32))
    client.infer("linear", [tensor])
    metrics = mixed_server.get("/metrics").body.decode()
    assert (
        'tfship_requests_total{api="infer",model="linear",protocol="v2_grpc",status="200",'
        'version="1"}'
    ) in metrics
