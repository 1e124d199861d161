"""REST and gRPC answer the same inputs the same way: one dataplane under both.

In process: one app (its REST side through the Flask test client, the fast path included)
and that app's own gRPC server on a loopback port, both on the same registry. Each case is
sent as TF Serving REST JSON and as a TF Serving gRPC message; answers must carry the same
numbers, and refusals the status and gRPC code of one row of the errors table, with the same
message wherever the refusal comes from the dataplane rather than a wire format.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
from conftest import TrainedRepo

from service.app import create_app
from service.protocols.grpc_server import GrpcServer
from service.settings import ServiceSettings

tf = pytest.importorskip("tensorflow")
from google.protobuf import json_format  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

MAX_ROWS = 20


@pytest.fixture(scope="module")
def doors(trained_repo: TrainedRepo) -> Iterator[tuple[Any, Any, Any]]:
    settings = ServiceSettings(
        model_dir=trained_repo.path,
        poll_seconds=0,
        max_rows=MAX_ROWS,
        host="127.0.0.1",
        grpc_port=0,  # any free port: the server says which
        access_log=False,
    )
    app = create_app(settings)
    plane = app.extensions["tfship.dataplane"]
    deadline = time.monotonic() + 60
    while not plane.ready()[0]:
        assert time.monotonic() < deadline, plane.ready()
        time.sleep(0.05)
    server = GrpcServer(plane, settings)
    port = server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield (
            app.test_client(),
            prediction_service_pb2_grpc.PredictionServiceStub(channel),
            model_service_pb2_grpc.ModelServiceStub(channel),
        )
    server.stop(1)


def _spec(request: Any, model: str, version: int | None, label: str | None) -> None:
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label


def _rest_path(model: str, version: int | None, label: str | None, verb: str) -> str:
    where = f"/versions/{version}" if version else f"/labels/{label}" if label else ""
    return f"/v1/models/{model}{where}:{verb}"


def _grpc(call: Any, request: Any) -> tuple[str, Any]:
    try:
        return "OK", call(request, timeout=30)
    except grpc.RpcError as error:
        return error.code().name, error.details()


def _rest(client: Any, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    answer = client.post(path, json=body)
    return answer.status_code, answer.get_json()


def pixels(rows: int) -> np.ndarray:
    return np.linspace(0, 16, rows * 64, dtype=np.float32).reshape(rows, 8, 8, 1)


# (case, model, version, label, input name, inputs, signature name, HTTP status, gRPC code,
# whether the message must be the same: the dataplane's refusals, not the codecs' own)
PREDICT_CASES = [
    ("ok", "digits", None, None, "pixels", pixels(3), "", 200, "OK", True),
    ("by version", "digits", 1, None, "pixels", pixels(2), "", 200, "OK", True),
    ("unknown model", "nope", None, None, "pixels", pixels(1), "", 404, "NOT_FOUND", True),
    ("unknown version", "digits", 7, None, "pixels", pixels(1), "", 404, "NOT_FOUND", True),
    ("unknown label", "digits", None, "canary", "pixels", pixels(1), "", 404, "NOT_FOUND", True),
    ("too many rows", "digits", None, None, "pixels", pixels(MAX_ROWS + 1), "", 400,
     "INVALID_ARGUMENT", True),
    ("wrong signature", "digits", None, None, "pixels", pixels(1), "classify", 400,
     "INVALID_ARGUMENT", True),
    ("wrong input name", "digits", None, None, "image", pixels(1), "", 400, "INVALID_ARGUMENT",
     False),
    ("wrong row shape", "digits", None, None, "pixels", np.zeros((2, 4, 4, 1), np.float32), "",
     400, "INVALID_ARGUMENT", False),
]  # fmt: skip


@pytest.mark.parametrize("case", PREDICT_CASES, ids=[c[0] for c in PREDICT_CASES])
def test_predict_answers_and_refusals_agree(doors: tuple[Any, Any, Any], case: tuple) -> None:
    _, model, version, label, name, array, signature, status, code, same_message = case
    client, prediction, _ = doors
    body: dict[str, Any] = {"inputs": {name: array.tolist()}}
    if signature:
        body["signature_name"] = signature
    rest_status, rest_body = _rest(client, _rest_path(model, version, label, "predict"), body)
    request = predict_pb2.PredictRequest()
    _spec(request, model, version, label)
    request.model_spec.signature_name = signature
    request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
    grpc_code, grpc_answer = _grpc(prediction.Predict, request)
    assert (rest_status, grpc_code) == (status, code), (rest_body, grpc_answer)
    if status == 200:
        # One output: TF Serving's columnar answer is its bare value.
        rest_scores = np.asarray(rest_body["outputs"], np.float32)
        grpc_scores = tf.make_ndarray(grpc_answer.outputs["probabilities"])
        np.testing.assert_array_equal(rest_scores, grpc_scores)
        assert grpc_answer.model_spec.version.value == 1
    elif same_message:
        assert rest_body["error"] == grpc_answer


def _example(image: np.ndarray) -> Any:
    import tensorflow as tf

    feature = tf.train.Feature(float_list=tf.train.FloatList(value=image.reshape(-1).tolist()))
    return tf.train.Example(features=tf.train.Features(feature={"pixels": feature}))


def test_classify_and_regress_agree(doors: tuple[Any, Any, Any]) -> None:
    client, prediction, _ = doors
    images = pixels(4)
    examples = {"examples": [{"pixels": image.reshape(-1).tolist()} for image in images]}

    rest_status, rest_body = _rest(client, "/v1/models/digits:classify", examples)
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "digits"
    request.input.example_list.examples.extend(_example(image) for image in images)
    grpc_code, grpc_answer = _grpc(prediction.Classify, request)
    assert (rest_status, grpc_code) == (200, "OK"), (rest_body, grpc_answer)
    over_grpc = [
        [[c.label, c.score] for c in row.classes] for row in grpc_answer.result.classifications
    ]
    assert len(over_grpc) == 4 and [len(row) for row in over_grpc] == [10] * 4
    labels = [[pair[0] for pair in row] for row in rest_body["results"]]
    assert labels == [[pair[0] for pair in row] for row in over_grpc]
    np.testing.assert_allclose(
        np.array([[pair[1] for pair in row] for row in rest_body["results"]], np.float32),
        np.array([[pair[1] for pair in row] for row in over_grpc], np.float32),
    )

    # A classification model refuses regress the same way through both doors.
    rest_status, rest_body = _rest(client, "/v1/models/digits:regress", examples)
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "digits"
    request.input.example_list.examples.extend(_example(image) for image in images)
    grpc_code, grpc_answer = _grpc(prediction.Regress, request)
    assert (rest_status, grpc_code) == (400, "INVALID_ARGUMENT")
    assert rest_body["error"] == grpc_answer
    assert "is a classification model; regress needs a regression model" in grpc_answer


def test_status_and_metadata_agree(doors: tuple[Any, Any, Any]) -> None:
    client, prediction, models = doors
    rest = client.get("/v1/models/digits").get_json()["model_version_status"]
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "digits"
    code, answer = _grpc(models.GetModelStatus, request)
    assert code == "OK"
    assert [(s["version"], s["state"]) for s in rest] == [
        (str(s.version), get_model_status_pb2.ModelVersionStatus.State.Name(s.state))
        for s in answer.model_version_status
    ]

    rest = client.get("/v1/models/digits/metadata").get_json()
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "digits"
    request.metadata_field.append("signature_def")
    code, answer = _grpc(prediction.GetModelMetadata, request)
    assert code == "OK"
    defs = get_model_metadata_pb2.SignatureDefMap()
    answer.metadata["signature_def"].Unpack(defs)
    # Compared as messages: JSON spells out defaults that the wire format leaves out.
    over_rest = json_format.ParseDict(
        rest["metadata"]["signature_def"], get_model_metadata_pb2.SignatureDefMap()
    )
    assert defs == over_rest and {"serving_default", "serve"} <= set(defs.signature_def)

    # Unknown models: the same refusal from the dataplane.
    status = client.get("/v1/models/nope")
    request.model_spec.name = "nope"
    code, message = _grpc(prediction.GetModelMetadata, request)
    assert (status.status_code, code) == (404, "NOT_FOUND")
    assert status.get_json()["error"] == message
