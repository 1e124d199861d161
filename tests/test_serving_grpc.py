"""gRPC, driven the way TF Serving's own Python clients do it: the tensorflow-serving-api
stubs, ``tf.make_tensor_proto`` inputs, ``tf.make_ndarray`` outputs, against real gunicorn
workers on loopback."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
from conftest import Server
from onnx_models import linear_prediction

tf = pytest.importorskip("tensorflow")
from google.protobuf import json_format  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from tensorflow.core.framework import tensor_pb2  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

Digits = tuple[np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def channel(mixed_server: Server) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(mixed_server.grpc_target) as opened:
        grpc.channel_ready_future(opened).result(timeout=30)
        yield opened


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> Any:
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def predict_request(model: str = "digits", **inputs: Any) -> Any:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = "serving_default"
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(
            value if isinstance(value, tensor_pb2.TensorProto) else tf.make_tensor_proto(value)
        )
    return request


def rpc_error(call: Any, request: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=30)
    return caught.value


def test_predict_matches_rest_and_labels(stub: Any, mixed_server: Server, digits: Digits) -> None:
    images, labels = digits
    batch = images[:16]
    response = stub.Predict(predict_request(pixels=batch), timeout=30)
    assert response.model_spec.name == "digits"
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"
    probabilities = tf.make_ndarray(response.outputs["probabilities"])
    assert probabilities.shape == (16, 10) and probabilities.dtype == np.float32
    assert (probabilities.argmax(axis=1) == labels[:16]).mean() >= 0.9
    rest = mixed_server.post("/v1/models/digits:predict", {"instances": batch.tolist()})
    np.testing.assert_allclose(probabilities, np.array(rest.json()["predictions"]), atol=1e-6)


def test_predict_accepts_what_make_tensor_proto_makes_of_python_lists(
    stub: Any, digits: Digits
) -> None:
    images, labels = digits
    # Python ints become an int32 tensor, and floats of numpy float64 a double tensor.
    as_ints = images[:4].astype(int).tolist()
    as_doubles = images[:4].astype(np.float64)
    first = tf.make_ndarray(stub.Predict(predict_request(pixels=as_ints)).outputs["probabilities"])
    second = tf.make_ndarray(
        stub.Predict(predict_request(pixels=as_doubles)).outputs["probabilities"]
    )
    np.testing.assert_allclose(first, second, atol=1e-6)
    assert list(first.argmax(axis=1)) == list(labels[:4])


def test_predict_by_version_and_errors_for_unknown_version_or_label(
    stub: Any, digits: Digits
) -> None:
    request = predict_request(pixels=digits[0][:1])
    request.model_spec.version.value = 1
    assert stub.Predict(request).model_spec.version.value == 1
    request.model_spec.version.value = 7
    error = rpc_error(stub.Predict, request)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "version 7 of model 'digits' is not served" in error.details()
    request.model_spec.version_label = "stable"
    error = rpc_error(stub.Predict, request)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "label 'stable' is not defined" in error.details()


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        (lambda r: r.model_spec.ClearField("name"), "INVALID_ARGUMENT", "model_spec.name is empty"),
        (
            lambda r: setattr(r.model_spec, "name", "nope"),
            "NOT_FOUND",
            "model 'nope' not found (models served: digits, linear)",
        ),
        (
            lambda r: setattr(r.model_spec, "signature_name", "classify"),
            "INVALID_ARGUMENT",
            "signature 'classify' not found; this model serves 'serving_default'",
        ),
        (
            lambda r: r.inputs["pixels"].CopyFrom(tf.make_tensor_proto(np.zeros((2, 8, 8)))),
            "INVALID_ARGUMENT",
            "input 'pixels': expected shape [-1, 8, 8, 1] (rank 4), got shape [2, 8, 8] (rank 3)",
        ),
        (
            lambda r: r.inputs["extra"].CopyFrom(tf.make_tensor_proto([1.0])),
            "INVALID_ARGUMENT",
            "unknown 'extra' input",
        ),
        (
            lambda r: r.inputs["pixels"].CopyFrom(
                tf.make_tensor_proto(np.full((1, 8, 8, 1), np.nan, np.float32))
            ),
            "INVALID_ARGUMENT",
            "input 'pixels': NaN and Infinity are not accepted",
        ),
        (
            lambda r: r.inputs["pixels"].CopyFrom(
                tf.make_tensor_proto(np.ones((1, 8, 8, 1), bool))
            ),
            "INVALID_ARGUMENT",
            "input 'pixels': expected float, got bool",
        ),
        (
            lambda r: r.inputs["pixels"].CopyFrom(
                tf.make_tensor_proto(np.full((1, 8, 8, 1), b"x", dtype=object))
            ),
            "INVALID_ARGUMENT",
            "input 'pixels': expected float, got string",
        ),
        (
            lambda r: r.output_filter.append("logits"),
            "INVALID_ARGUMENT",
            "output_filter: unknown output 'logits'; the model's outputs are 'probabilities'",
        ),
    ],
)
def test_predict_errors_name_the_problem(
    stub: Any, digits: Digits, change: Any, code: str, message: str
) -> None:
    request = predict_request(pixels=digits[0][:2])
    change(request)
    error = rpc_error(stub.Predict, request)
    assert error.code() == getattr(grpc.StatusCode, code)
    assert message in error.details()


def test_predict_reads_typed_value_fields_and_checks_tensor_content(stub: Any) -> None:
    # A single float_val fills the whole shape, as TensorFlow reads it.
    filled = tf.make_tensor_proto(0.0, dtype=tf.float32, shape=[3, 8, 8, 1])
    assert not filled.tensor_content and len(filled.float_val) == 1
    answer = stub.Predict(predict_request(pixels=filled))
    assert tf.make_ndarray(answer.outputs["probabilities"]).shape == (3, 10)
    torn = tf.make_tensor_proto(np.zeros((2, 8, 8, 1), np.float32))
    torn.tensor_content = torn.tensor_content[:-4]
    error = rpc_error(stub.Predict, predict_request(pixels=torn))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "tensor_content has 508 bytes; shape [2, 8, 8, 1] of float needs 512" in error.details()


def test_output_filter_selects_outputs(stub: Any, digits: Digits) -> None:
    request = predict_request(pixels=digits[0][:1])
    request.output_filter.append("probabilities")
    assert list(stub.Predict(request).outputs) == ["probabilities"]


def test_get_model_metadata_is_the_signature_def_rest_reports(
    stub: Any, mixed_server: Server
) -> None:
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "digits"
    request.metadata_field.append("signature_def")
    response = stub.GetModelMetadata(request)
    assert response.model_spec.name == "digits" and response.model_spec.version.value == 1
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_defs)
    serving = signature_defs.signature_def["serving_default"]
    assert serving.method_name == "tensorflow/serving/predict"
    assert [d.size for d in serving.inputs["pixels"].tensor_shape.dim] == [-1, 8, 8, 1]
    rest = mixed_server.get("/v1/models/digits/metadata").json()
    as_json = json_format.MessageToDict(
        signature_defs, always_print_fields_with_no_presence=True, preserving_proto_field_name=True
    )
    assert as_json == rest["metadata"]["signature_def"]

    request.metadata_field[:] = ["graph_def"]
    error = rpc_error(stub.GetModelMetadata, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "metadata field 'graph_def' is not served" in error.details()


def test_get_model_status(channel: grpc.Channel) -> None:
    models = model_service_pb2_grpc.ModelServiceStub(channel)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "digits"
    response = models.GetModelStatus(request, timeout=30)
    (status,) = response.model_version_status
    assert status.version == 1
    assert status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert status.status.error_code == 0 and status.status.error_message == ""
    request.model_spec.name = "nope"
    error = rpc_error(models.GetModelStatus, request)
    assert error.code() == grpc.StatusCode.NOT_FOUND


def _example(pixels: np.ndarray) -> Any:
    example = tf.train.Example()
    example.features.feature["pixels"].float_list.value.extend(pixels.ravel().tolist())
    return example


def test_classify_returns_class_names_and_scores(
    stub: Any, mixed_server: Server, digits: Digits
) -> None:
    images, labels = digits
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "digits"
    request.input.example_list.examples.extend(_example(image) for image in images[:8])
    response = stub.Classify(request, timeout=30)
    assert response.model_spec.version.value == 1
    rows = response.result.classifications
    assert len(rows) == 8
    # The scores are the predict signature's probabilities, labelled with the class names.
    predicted = tf.make_ndarray(
        stub.Predict(predict_request(pixels=images[:8])).outputs["probabilities"]
    )
    for row, probabilities in zip(rows, predicted, strict=True):
        assert [c.label for c in row.classes] == [str(d) for d in range(10)]
        np.testing.assert_allclose([c.score for c in row.classes], probabilities, atol=1e-6)
    best = [int(max(row.classes, key=lambda c: c.score).label) for row in rows]
    assert np.mean(np.array(best) == labels[:8]) >= 0.75
    # TF Serving clients name the SavedModel's classify signature: the same answer.
    request.model_spec.signature_name = "classification"
    assert stub.Classify(request, timeout=30).result == response.result
    request.model_spec.signature_name = "regression"
    error = rpc_error(stub.Classify, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "signature 'regression' not found; this model serves 'serving_default'" in (
        error.details()
    )
    rest = mixed_server.post(
        "/v1/models/digits:classify",
        {"examples": [{"pixels": image.ravel().tolist()} for image in images[:8]]},
    ).json()["results"]
    for row, rest_row in zip(rows, rest, strict=True):
        assert [c.label for c in row.classes] == [pair[0] for pair in rest_row]
        np.testing.assert_allclose([c.score for c in row.classes], [p[1] for p in rest_row])


def test_regress_a_regression_model_with_context_features(stub: Any) -> None:
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "linear"
    rows = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 4.0]], dtype=np.float32)
    with_context = request.input.example_list_with_context
    for row in rows:
        example = with_context.examples.add()
        example.features.feature["features"].float_list.value.extend(row.tolist())
    # A context feature the model does not use is ignored, like TF Serving's parsing.
    with_context.context.features.feature["source"].bytes_list.value.append(b"unit test")
    response = stub.Regress(request, timeout=30)
    values = [r.value for r in response.result.regressions]
    np.testing.assert_allclose(values, linear_prediction(rows), rtol=1e-6)


def test_classify_and_regress_refuse_the_other_task(stub: Any, digits: Digits) -> None:
    regress = regression_pb2.RegressionRequest()
    regress.model_spec.name = "digits"
    regress.input.example_list.examples.append(_example(digits[0][0]))
    error = rpc_error(stub.Regress, regress)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'digits' is a classification model; regress needs a regression model" in (
        error.details()
    )
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = "digits"
    classify.input.example_list.examples.append(tf.train.Example())
    error = rpc_error(stub.Classify, classify)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "example 0 has no feature 'pixels'" in error.details()


def test_multi_inference_is_reported_unimplemented(stub: Any) -> None:
    error = rpc_error(stub.MultiInference, inference_pb2.MultiInferenceRequest())
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED


def test_health_service_follows_readiness(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    serving = health_pb2.HealthCheckResponse.SERVING
    for service in ("", "tensorflow.serving.PredictionService", "digits", "linear"):
        response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=30)
        assert response.status == serving, service
    error = rpc_error(health.Check, health_pb2.HealthCheckRequest(service="nope"))
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_request_id_metrics_and_access_log(stub: Any, mixed_server: Server, digits: Digits) -> None:
    call = stub.Predict.with_call(
        predict_request(pixels=digits[0][:1]), metadata=(("x-request-id", "grpc-test-42"),)
    )
    assert ("x-request-id", "grpc-test-42") in call[1].initial_metadata()
    deadline = time.monotonic() + 10
    while "grpc-test-42" not in mixed_server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    line = next(x for x in mixed_server.log().splitlines() if "grpc-test-42" in x)
    assert '"protocol":"grpc"' in line and '"model":"digits"' in line
    assert '"path":"/tensorflow.serving.PredictionService/Predict"' in line
    metrics = mixed_server.get("/metrics").body.decode()
    found = re.search(
        r'tfship_requests_total\{api="predict",model="digits",protocol="grpc",status="200",'
        r'version="1"\} (\d+)',
        metrics,
    )
    assert found and int(found.group(1)) >= 1
    assert (
        re.search(r'tfship_requests_total\{api="predict",model="nope",protocol="grpc"', metrics)
        is None
    )
    # Every call waited (if only microseconds) for a thread of the worker's gRPC pool.
    queued = re.search(r'tfship_queue_duration_seconds_count\{protocol="grpc"\} (\S+)', metrics)
    assert queued and float(queued.group(1)) >= 1


def test_every_worker_answers_grpc(mixed_server: Server, digits: Digits) -> None:
    """Both workers bind the port (SO_REUSEPORT): new connections reach either one."""
    pids = set()
    for attempt in range(40):
        with grpc.insecure_channel(
            mixed_server.grpc_target, options=[("grpc.use_local_subchannel_pool", 1)]
        ) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request_id = f"which-worker-{attempt}"
            stub.Predict(
                predict_request(pixels=digits[0][:1]),
                metadata=(("x-request-id", request_id),),
                timeout=30,
            )
        pids.add(_pid_of(mixed_server, request_id))
        if len(pids) == 2:
            break
    assert len(pids) == 2


def _pid_of(server: Server, request_id: str) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in server.log().splitlines():
            if f'"request_id":"{request_id}"' in line:
                return int(re.search(r'"pid":(\d+)', line).group(1))  # type: ignore[union-attr]
        time.sleep(0.05)
    raise AssertionError(f"no access line for {request_id}")


def test_grpc_on_the_savedmodel_runtime(
    savedmodel_server: Server, stub: Any, digits: Digits
) -> None:
    """A worker that has imported TensorFlow (and its protos) serves the same messages."""
    with grpc.insecure_channel(savedmodel_server.grpc_target) as channel:
        tf_stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_request(pixels=digits[0][:8])
        from_tf = tf.make_ndarray(tf_stub.Predict(request, timeout=60).outputs["probabilities"])
    from_onnx = tf.make_ndarray(stub.Predict(request, timeout=30).outputs["probabilities"])
    np.testing.assert_allclose(from_tf, from_onnx, atol=1e-4)
