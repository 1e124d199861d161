"""API keys: off by default; when on, 401 without a valid key, 403 for a model the key may not
use, health and metrics open by default; REST and gRPC alike; keys rotate without a restart
and never reach the logs."""

from __future__ import annotations

import json
import subprocess
import time
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from conftest import ROOT, Server, TrainedRepo, http, quiet_env, tfship_command
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.auth import KeysFileError, parse_keys_file
from service.codecs.grpc_protos import message
from service.codecs.tensor_proto import write_tensor

SCORER = "scorer-key-0123456789abcdef"
LIMITED = "limited-key-0123456789abcdef"
ROTATED = "rotated-key-0123456789abcdef"
PREDICT = "/v1/models/digits:predict"
BODY = {"instances": [np.zeros((8, 8, 1)).tolist()]}


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("auth") / "keys.txt"
    path.write_text(
        f"# API keys for the test server\n{SCORER} name=scorer\n\n"
        f"{LIMITED}   name=limited models=linear  # may not use digits\n"
    )
    return path


@pytest.fixture(scope="module")
def guarded(trained_repo: TrainedRepo, start_server: Any, keys_file: Path) -> Server:
    server = start_server(trained_repo.path, "--workers", "1", "--api-keys-file", str(keys_file))
    server.wait_ready()
    return server


def post(server: Server, path: str, headers: dict[str, str]) -> Any:
    return http("POST", server.url + path, BODY, headers=headers)


def test_without_a_valid_key_api_calls_are_401(guarded: Server) -> None:
    missing = post(guarded, PREDICT, {})
    assert missing.status == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="tfship"'
    assert (
        "an API key is required: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'"
        in (missing.json()["error"])
    )
    wrong = post(guarded, PREDICT, {"Authorization": "Bearer not-a-key-0123456789"})
    assert wrong.status == 401 and wrong.json()["error"] == "the API key is not valid"
    assert post(guarded, PREDICT, {"Authorization": "Basic " + SCORER}).status == 401
    for path in ("/v1/models/digits", "/v2/models/digits", "/openapi.json"):
        assert guarded.get(path).status == 401, path
    # Refusals are counted under their API, with no model label (none was looked up).
    metrics = guarded.get("/metrics").body.decode()
    for api, protocol in (("predict", "tfserving"), ("status", "tfserving"), ("metadata", "v2")):
        assert (
            f'tfship_requests_total{{api="{api}",model="",protocol="{protocol}",status="401",'
            in metrics
        ), api


def test_a_valid_key_in_either_header(guarded: Server) -> None:
    assert post(guarded, PREDICT, {"Authorization": f"Bearer {SCORER}"}).status == 200
    assert post(guarded, PREDICT, {"X-API-Key": SCORER}).status == 200
    status = http(
        "GET", guarded.url + "/v1/models/digits", headers={"Authorization": f"bearer {SCORER}"}
    )
    assert status.status == 200


def test_a_key_limited_to_other_models_is_403(guarded: Server) -> None:
    refused = post(guarded, PREDICT, {"X-API-Key": LIMITED})
    assert refused.status == 403
    assert refused.json()["error"] == "this API key may not use model 'digits'"


def test_the_api_document_lists_only_the_models_a_key_may_use(guarded: Server) -> None:
    def bodied(key: str) -> list[str]:
        answer = http("GET", guarded.url + "/openapi.json", headers={"X-API-Key": key})
        assert answer.status == 200
        return [
            p for p, ops in answer.json()["paths"].items() if "requestBody" in ops.get("post", {})
        ]

    assert "/v1/models/digits:predict" in bodied(SCORER)
    assert bodied(LIMITED) == ["/v2/repository/index"]  # digits is not one of its models


def test_health_and_metrics_stay_open_and_keys_never_reach_the_log(guarded: Server) -> None:
    for path in ("/", "/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/metrics"):
        assert guarded.get(path).status == 200, path
    marker = "auth-log-check"
    http("POST", guarded.url + PREDICT, BODY, headers={"X-API-Key": SCORER, "X-Request-ID": marker})
    deadline = time.monotonic() + 10
    while marker not in guarded.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    line = next(x for x in guarded.log().splitlines() if marker in x)
    assert '"client":"scorer"' in line
    log = guarded.log()
    assert SCORER not in log and LIMITED not in log


def _predict_call(channel: grpc.Channel) -> Any:
    request_type = message("tensorflow.serving.PredictRequest")
    return channel.unary_unary(
        "/tensorflow.serving.PredictionService/Predict",
        request_serializer=request_type.SerializeToString,
        response_deserializer=message("tensorflow.serving.PredictResponse").FromString,
    )


def test_grpc_needs_the_same_keys(guarded: Server) -> None:
    request = message("tensorflow.serving.PredictRequest")()
    request.model_spec.name = "digits"
    write_tensor(request.inputs["pixels"], np.zeros((1, 8, 8, 1), np.float32))
    with grpc.insecure_channel(guarded.grpc_target) as channel:
        predict = _predict_call(channel)
        for metadata, code in (
            ((), grpc.StatusCode.UNAUTHENTICATED),
            ((("authorization", "Bearer wrong-key-0123456789"),), grpc.StatusCode.UNAUTHENTICATED),
            ((("x-api-key", LIMITED),), grpc.StatusCode.PERMISSION_DENIED),
        ):
            with pytest.raises(grpc.RpcError) as caught:
                predict(request, metadata=metadata, timeout=30)
            assert caught.value.code() == code
        answer = predict(request, metadata=(("authorization", f"Bearer {SCORER}"),), timeout=30)
        assert list(answer.outputs) == ["probabilities"]
        # Health is exempt by default.
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=30).status == (
            health_pb2.HealthCheckResponse.SERVING
        )


def test_v2_grpc_needs_the_same_keys_and_lists_only_allowed_models(guarded: Server) -> None:
    from service.codecs import v2_grpc_protos as v2

    def rpc(channel: grpc.Channel, method: str) -> Any:
        response = v2.METHODS[method][1]
        return channel.unary_unary(
            f"/{v2.SERVICE}/{method}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=v2.message(response).FromString,
        )

    request = v2.message("ModelInferRequest")(model_name="digits")
    request.inputs.add(name="pixels", datatype="FP32", shape=[1, 8, 8, 1])
    request.raw_input_contents.append(bytes(4 * 64))
    with grpc.insecure_channel(guarded.grpc_target) as channel:
        infer = rpc(channel, "ModelInfer")
        for metadata, code in (
            ((), grpc.StatusCode.UNAUTHENTICATED),
            ((("x-api-key", LIMITED),), grpc.StatusCode.PERMISSION_DENIED),
        ):
            with pytest.raises(grpc.RpcError) as caught:
                infer(request, metadata=metadata, timeout=30)
            assert caught.value.code() == code
        answer = infer(request, metadata=(("x-api-key", SCORER),), timeout=30)
        assert [o.name for o in answer.outputs] == ["probabilities"]
        # Server liveness and readiness are health: open by default, as over REST.
        live = rpc(channel, "ServerLive")(v2.message("ServerLiveRequest")(), timeout=30)
        assert live.live is True
        index = rpc(channel, "RepositoryIndex")
        empty = v2.message("RepositoryIndexRequest")()
        with pytest.raises(grpc.RpcError) as caught:
            index(empty, timeout=30)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        listed = index(empty, metadata=(("x-api-key", SCORER),), timeout=30)
        assert [m.name for m in listed.models] == ["digits"]
        # A key limited to 'linear' does not see 'digits' in the index.
        limited = index(empty, metadata=(("x-api-key", LIMITED),), timeout=30)
        assert [m.name for m in limited.models] == []


def test_keys_rotate_without_a_restart(
    trained_repo: TrainedRepo, start_server: Any, tmp_path: Path
) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text(f"{SCORER}\n")
    server = start_server(
        trained_repo.path,
        "--workers",
        "1",
        "--api-keys-file",
        str(keys),
        "--auth-exempt",
        "none",
    )
    server.wait_answering()
    assert server.get("/readyz").status == 401  # nothing exempt
    assert post(server, PREDICT, {"X-API-Key": SCORER}).status == 200
    keys.write_text(f"{ROTATED} name=rotated\n")
    deadline = time.monotonic() + 15
    while post(server, PREDICT, {"X-API-Key": ROTATED}).status != 200:
        assert time.monotonic() < deadline, "the new key was never accepted"
        time.sleep(0.2)
    assert post(server, PREDICT, {"X-API-Key": SCORER}).status == 401
    with grpc.insecure_channel(server.grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            health.Check(health_pb2.HealthCheckRequest(), timeout=30)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # gRPC shares the REST store: it too accepts the new key, and only that one.
        deadline = time.monotonic() + 15
        while True:
            try:
                answer = health.Check(
                    health_pb2.HealthCheckRequest(), metadata=(("x-api-key", ROTATED),), timeout=30
                )
                break
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.UNAUTHENTICATED
                assert time.monotonic() < deadline, "gRPC never accepted the new key"
                time.sleep(0.2)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


def grpc_predict(server: Server, metadata: tuple[tuple[str, str], ...]) -> grpc.StatusCode:
    request = message("tensorflow.serving.PredictRequest")()
    request.model_spec.name = "digits"
    write_tensor(request.inputs["pixels"], np.zeros((1, 8, 8, 1), np.float32))
    with grpc.insecure_channel(server.grpc_target) as channel:
        predict = channel.unary_unary(
            "/tensorflow.serving.PredictionService/Predict",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=message("tensorflow.serving.PredictResponse").FromString,
        )
        try:
            predict(request, metadata=metadata, timeout=30)
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


def test_a_revoked_key_never_comes_back(
    trained_repo: TrainedRepo, start_server: Any, tmp_path: Path
) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text(f"{SCORER}\n{ROTATED}\n")
    server = start_server(trained_repo.path, "--workers", "2", "--api-keys-file", str(keys))
    server.wait_ready()
    assert post(server, PREDICT, {"X-API-Key": ROTATED}).status == 200
    keys.write_text(f"{SCORER}\n")  # ROTATED revoked...
    time.sleep(2.5)  # ...and no request meanwhile: the workers' own clocks see it
    keys.write_text("# emptied by a bad edit\n")  # then the file holds no key at all
    # Neither the revoked key nor any older one is accepted again, on either protocol,
    # whichever worker answers: the empty file refuses every key until it is fixed.
    for _ in range(6):
        assert post(server, PREDICT, {"X-API-Key": ROTATED}).status == 401
        assert grpc_predict(server, (("x-api-key", ROTATED),)) == grpc.StatusCode.UNAUTHENTICATED
    deadline = time.monotonic() + 15
    while post(server, PREDICT, {"X-API-Key": SCORER}).status != 401:
        assert time.monotonic() < deadline, "the empty keys file was never read"
        time.sleep(0.2)
    assert "every API key is refused until the file is fixed" in server.log()
    keys.write_text(f"{SCORER}\n")  # fixed: the file's own keys, not older ones
    deadline = time.monotonic() + 15
    while post(server, PREDICT, {"X-API-Key": SCORER}).status != 200:
        assert time.monotonic() < deadline, "the fixed keys file was never read"
        time.sleep(0.2)
    assert post(server, PREDICT, {"X-API-Key": ROTATED}).status == 401


def test_two_keys_in_one_request_are_refused_on_both_protocols(guarded: Server) -> None:
    two = (("x-api-key", LIMITED), ("x-api-key", SCORER))
    assert grpc_predict(guarded, two) == grpc.StatusCode.UNAUTHENTICATED
    assert grpc_predict(guarded, two[1:]) == grpc.StatusCode.OK
    # http.client sends both headers as given; WSGI joins them, and the pair is refused.
    connection = HTTPConnection("127.0.0.1", guarded.port, timeout=30)
    connection.putrequest("POST", PREDICT)
    for _, value in two:
        connection.putheader("X-API-Key", value)
    body = json.dumps(BODY).encode()
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body)
    assert connection.getresponse().status == 401
    connection.close()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("short\n", "line 1: a key must be at least 16 characters"),
        (f"{SCORER} role=admin\n", "expected name=CLIENT or models=A,B after the key"),
        (f"{SCORER}\n{SCORER} name=twice\n", "line 2: the same key appears twice"),
        ("# only a comment\n", "holds no key"),
    ],
)
def test_bad_keys_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "keys.txt"
    path.write_text(text)
    with pytest.raises(KeysFileError, match=message):
        parse_keys_file(path)


def test_serve_refuses_a_bad_keys_file_before_starting(tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("short\n")
    result = subprocess.run(
        [*tfship_command(), "serve", "--model-dir", str(tmp_path), "--api-keys-file", str(keys)],
        capture_output=True,
        text=True,
        env=quiet_env(),
        cwd=ROOT,
        timeout=30,
    )
    assert result.returncode == 2
    assert "a key must be at least 16 characters" in result.stderr
