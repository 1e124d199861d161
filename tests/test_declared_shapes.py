"""Tiny requests that declare huge tensors, inputs that disagree on their batch, and V2
fields of the wrong JSON type: each refused with a 400 / INVALID_ARGUMENT naming the
problem, on a real server, without the worker allocating what was declared."""

from __future__ import annotations

import json
import shutil
import struct
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest import Server, TrainedRepo
from foreign_models import write_tagged_onnx

from service.codecs.grpc_protos import message as tf_message
from service.codecs.v2_grpc_protos import message as v2_message

DT_FLOAT, DT_STRING = 1, 7
# A worker that builds what these requests declare grows by gigabytes; one that refuses
# them first grows by what parsing small messages costs.
MAX_PEAK_GROWTH = 64 * 2**20


@pytest.fixture(scope="module")
def server(trained_repo: TrainedRepo, start_server: Any, tmp_path_factory: Any) -> Server:
    repo = tmp_path_factory.mktemp("declared") / "repo"
    shutil.copytree(trained_repo.path, repo)
    write_tagged_onnx(repo / "tagged" / "1" / "model.onnx")
    # One worker: every request lands in the process whose memory is measured.
    started = start_server(repo, "--workers", "1")
    started.wait_ready()
    return started


def worker_peak_bytes(server: Server) -> int:
    """The worker's peak resident memory (VmHWM): an allocation shows even once freed."""
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    (pid,) = children.read_text().split()
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def post(server: Server, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    connection = HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("POST", path, body, headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read()).get("error", "")
    finally:
        connection.close()


def binary_infer(server: Server, header: dict[str, Any], tail: bytes) -> tuple[int, str]:
    model = header.pop("model", "tagged")
    head = json.dumps(header).encode()
    return post(
        server,
        f"/v2/models/{model}/infer",
        head + tail,
        {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(head)),
        },
    )


def rpc(server: Server, method: str, request: Any, response: Any) -> grpc.RpcError:
    with grpc.insecure_channel(server.grpc_target) as channel:
        call = channel.unary_unary(
            method,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response.FromString,
        )
        with pytest.raises(grpc.RpcError) as caught:
            call(request, timeout=30)
    return caught.value


def tf_predict(server: Server, model: str, tensors: dict[str, tuple[int, list[int], Any]]) -> Any:
    request = tf_message("tensorflow.serving.PredictRequest")()
    request.model_spec.name = model
    for name, (dtype, shape, values) in tensors.items():
        tensor = request.inputs[name]
        tensor.dtype = dtype
        for size in shape:
            tensor.tensor_shape.dim.add().size = size
        field = tensor.string_val if dtype == DT_STRING else tensor.float_val
        field.extend(values)
    return rpc(
        server,
        "/tensorflow.serving.PredictionService/Predict",
        request,
        tf_message("tensorflow.serving.PredictResponse"),
    )


def v2_grpc_infer(server: Server, inputs: list[tuple[str, str, list[int], bytes]]) -> Any:
    """A ModelInferRequest to ``tagged`` with raw contents."""
    request = v2_message("ModelInferRequest")(model_name="tagged")
    for name, datatype, shape, raw in inputs:
        request.inputs.add(name=name, datatype=datatype, shape=shape)
        request.raw_input_contents.append(raw)
    return rpc(
        server,
        "/inference.GRPCInferenceService/ModelInfer",
        request,
        v2_message("ModelInferResponse"),
    )


def test_huge_declared_tensors_are_refused_before_the_worker_builds_them(server: Server) -> None:
    before = worker_peak_bytes(server)
    # The repros: 51 bytes declaring [2^22, 8, 8, 1] filled from one float (2 GiB)...
    error = tf_predict(server, "digits", {"pixels": (DT_FLOAT, [2**22, 8, 8, 1], [1.0])})
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request has 4194304 rows; the limit is 10000" in error.details()
    for shape, needle in (
        ([2**32, 2**32, 8, 1], "dimension 1 must be 8, got 4294967296"),
        ([1] * 65, "expected shape [-1, 8, 8, 1] (rank 4), got shape"),
    ):
        error = tf_predict(server, "digits", {"pixels": (DT_FLOAT, shape, [1.0])})
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, shape
        assert needle in error.details()
    # ... a few hundred bytes declaring a BYTES input of 2^27 and 2^40 elements (V2 REST)...
    for rows in (2**27, 2**40):
        status, text = binary_infer(
            server,
            {
                "inputs": [
                    {
                        "name": "plan",
                        "datatype": "BYTES",
                        "shape": [rows, 1],
                        "parameters": {"binary_data_size": 5},
                    },
                    {"name": "monthly_price", "datatype": "FP32", "shape": [1, 1], "data": [1]},
                ]
            },
            struct.pack("<I", 1) + b"a",
        )
        assert status == 400, text
        assert f"request has {rows} rows; the limit is 10000" in text
    # ... and under the row limit, more elements than the bytes can hold.
    status, text = binary_infer(
        server,
        {
            "inputs": [
                {
                    "name": "plan",
                    "datatype": "BYTES",
                    "shape": [10_000, 1],
                    "parameters": {"binary_data_size": 5},
                },
                {"name": "monthly_price", "datatype": "FP32", "shape": [1, 1], "data": [1]},
            ]
        },
        struct.pack("<I", 1) + b"a",
    )
    assert status == 400
    assert "5 bytes of BYTES data cannot hold 10000 elements" in text
    # The same over V2 gRPC.
    error = v2_grpc_infer(
        server,
        [
            ("plan", "BYTES", [5000, 1], struct.pack("<I", 1) + b"a"),
            ("monthly_price", "FP32", [1, 1], struct.pack("<f", 1.0)),
        ],
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "5 bytes of BYTES data cannot hold 5000 elements" in error.details()
    assert worker_peak_bytes(server) - before < MAX_PEAK_GROWTH


@pytest.mark.parametrize("protocol", ["tfserving-columnar", "v2-rest", "v2-grpc", "tf-grpc"])
def test_inputs_with_different_batch_sizes_are_named(server: Server, protocol: str) -> None:
    needle = "inputs have different batch sizes ('plan' 2, 'monthly_price' 1)"
    if protocol == "tf-grpc":
        error = tf_predict(
            server,
            "tagged",
            {
                "plan": (DT_STRING, [2, 1], [b"basic", b"pro"]),
                "monthly_price": (DT_FLOAT, [1, 1], [1.0]),
            },
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert needle in error.details()
        return
    if protocol == "v2-grpc":
        error = v2_grpc_infer(
            server,
            [
                ("plan", "BYTES", [2, 1], (struct.pack("<I", 1) + b"a") * 2),
                ("monthly_price", "FP32", [1, 1], struct.pack("<f", 1.0)),
            ],
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert needle in error.details()
        return
    if protocol == "v2-rest":
        path = "/v2/models/tagged/infer"
        body = {
            "inputs": [
                {"name": "plan", "datatype": "BYTES", "shape": [2, 1], "data": ["basic", "pro"]},
                {"name": "monthly_price", "datatype": "FP32", "shape": [1, 1], "data": [1]},
            ]
        }
    else:
        path = "/v1/models/tagged:predict"
        body = {"inputs": {"plan": [["basic"], ["pro"]], "monthly_price": [[1.0]]}}
    status, text = post(
        server, path, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    assert status == 400, text
    assert needle in text


PIXELS = {"datatype": "FP32", "shape": [1, 8, 8, 1], "data": [0.0] * 64}


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"name": []}, "inputs[0]: 'name' must be a string, got a list"),
        ({"name": {}}, "inputs[0]: 'name' must be a string, got an object"),
        ({"datatype": []}, "datatype [] is not supported"),
        ({"datatype": {}}, "datatype {} is not supported"),
    ],
)
def test_v2_fields_of_the_wrong_json_type_are_a_400(
    server: Server, change: dict[str, Any], needle: str
) -> None:
    body = {"inputs": [{"name": "pixels", **PIXELS, **change}]}
    status, text = post(
        server,
        "/v2/models/digits/infer",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 400, text
    assert needle in text


@pytest.mark.parametrize("size", [256.0, "9", 1.5, [], True, -4])
def test_binary_data_size_must_be_a_byte_count(server: Server, size: Any) -> None:
    for model, tensor in (
        ("digits", {"name": "pixels", "datatype": "FP32", "shape": [1, 8, 8, 1]}),
        ("tagged", {"name": "plan", "datatype": "BYTES", "shape": [1, 1]}),
    ):
        inputs = [{**tensor, "parameters": {"binary_data_size": size}}]
        if model == "tagged":
            inputs.append(
                {"name": "monthly_price", "datatype": "FP32", "shape": [1, 1], "data": [1]}
            )
        status, text = binary_infer(server, {"model": model, "inputs": inputs}, b"\0" * 256)
        assert status == 400, (model, text)
        assert "binary_data_size must be a non-negative integer (bytes)" in text
