"""TF Serving REST details a switching client relies on, checked against TF Serving's docs
and ``json_tensor.cc``, in-process on the trained digits model."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import TrainedRepo

from service.app import create_app
from service.settings import ServiceSettings


def client_for(repo: Path, **settings: Any) -> Any:
    app = create_app(ServiceSettings(model_dir=repo, poll_seconds=0, **settings), load_models=False)
    app.extensions["tfship.registry"].poll()
    return app.test_client()


@pytest.fixture(scope="module")
def client(trained_repo: TrainedRepo) -> Any:
    return client_for(trained_repo.path)


def test_b64_values_in_examples_are_bytes_features(
    client: Any, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    pixels = digits[0][0].ravel().tolist()
    # The doc's example: a bytes feature the model does not use is parsed and ignored.
    extra = {"b64": base64.b64encode(b"image bytes").decode()}
    answer = client.post(
        "/v1/models/digits:classify",
        json={"context": {"tag": extra}, "examples": [{"pixels": pixels, "blob": [extra]}]},
    )
    assert answer.status_code == 200, answer.get_json()
    plain = client.post("/v1/models/digits:classify", json={"examples": [{"pixels": pixels}]})
    assert answer.get_json() == plain.get_json()
    for value, message in (
        ({"b64": "***"}, "example 0, feature 'blob': 'b64' is not valid base64"),
        ({"b64": 1}, "example 0, feature 'blob': an object value must be {\"b64\": base64 text}"),
        ({"x": "aGk="}, 'an object value must be {"b64": base64 text}'),
    ):
        bad = client.post(
            "/v1/models/digits:classify", json={"examples": [{"pixels": pixels, "blob": value}]}
        )
        assert bad.status_code == 400 and message in bad.get_json()["error"], bad.get_json()
    # Bytes for a numeric input are refused as such.
    wrong = client.post("/v1/models/digits:classify", json={"examples": [{"pixels": [extra] * 64}]})
    assert wrong.status_code == 400
    assert "feature 'pixels': expected numbers, got strings or bytes" in wrong.get_json()["error"]


def test_nan_and_infinity_tokens_follow_the_non_finite_setting(trained_repo: TrainedRepo) -> None:
    row = [[[0.0]] * 8] * 8
    body = '{"instances": [' + str(row).replace("0.0", "NaN", 1) + "]}"
    columnar = '{"inputs": {"pixels": [' + str(row).replace("0.0", "-Infinity", 1) + "]}}"
    refused = client_for(trained_repo.path)
    for text in (body, columnar):
        answer = refused.post(
            "/v1/models/digits:predict", data=text, content_type="application/json"
        )
        assert answer.status_code == 400
        assert "--non-finite allow" in answer.get_json()["error"]
    allowed = client_for(trained_repo.path, non_finite="allow")
    for text in (body, columnar):
        answer = allowed.post(
            "/v1/models/digits:predict", data=text, content_type="application/json"
        )
        assert answer.status_code == 200, answer.get_json()
    infer = allowed.post(
        "/v2/models/digits/infer",
        data='{"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 8, 8, 1], '
        '"data": [' + ", ".join(["Infinity"] + ["0"] * 63) + "]}]}",
        content_type="application/json",
    )
    assert infer.status_code == 200, infer.get_json()
    # Still JSON otherwise: a syntax error is reported as one.
    broken = allowed.post(
        "/v1/models/digits:predict", data='{"instances": [NaN,', content_type="application/json"
    )
    assert broken.status_code == 400 and "is not valid JSON" in broken.get_json()["error"]


def test_tf_serving_metrics_path_is_an_alias(client: Any) -> None:
    client.get("/v1/models/digits")
    ours = client.get("/metrics")
    theirs = client.get("/monitoring/prometheus/metrics")
    assert theirs.status_code == 200 and theirs.content_type == ours.content_type
    assert b"tfship_requests_total" in theirs.data


def test_compressed_bodies_are_decoded_within_the_limit(
    trained_repo: TrainedRepo, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    import gzip
    import zlib

    client = client_for(trained_repo.path, max_body_bytes=200_000)
    body = ('{"instances": ' + str(digits[0][:3].tolist()) + "}").encode()
    plain = client.post("/v1/models/digits:predict", data=body, content_type="application/json")
    assert plain.status_code == 200
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    for encoding, packed in (
        ("gzip", gzip.compress(body)),
        ("x-gzip", gzip.compress(body[:50]) + gzip.compress(body[50:])),  # two members
        ("deflate", zlib.compress(body)),
        ("deflate", raw_deflate.compress(body) + raw_deflate.flush()),  # no zlib header
        ("gzip, identity", gzip.compress(body)),
    ):
        answer = client.post(
            "/v1/models/digits:predict",
            data=packed,
            content_type="application/json",
            headers={"Content-Encoding": encoding},
        )
        assert answer.status_code == 200, (encoding, answer.get_json())
        assert answer.get_json() == plain.get_json(), encoding
    for encoding, packed, status, message in (
        ("br", body, 415, "Content-Encoding br is not accepted; send the body plain, gzip"),
        ("gzip", gzip.compress(body)[:-12], 400, "request body is truncated gzip data"),
        ("gzip", b"not gzip at all", 400, "request body is not valid gzip data"),
        # 1 kB on the wire, 300 kB inflated: refused once past the 200 kB limit.
        ("gzip", gzip.compress(b" " * 300_000), 413, "inflates (gzip) past 200000 bytes"),
    ):
        answer = client.post(
            "/v1/models/digits:predict",
            data=packed,
            content_type="application/json",
            headers={"Content-Encoding": encoding},
        )
        assert answer.status_code == status, (encoding, answer.get_json())
        assert message in answer.get_json()["error"], answer.get_json()


def test_named_signatures_answer_where_they_mean_the_same(
    client: Any, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    pixels = digits[0][0].ravel().tolist()
    plain = client.post("/v1/models/digits:classify", json={"examples": [{"pixels": pixels}]})
    named = client.post(
        "/v1/models/digits:classify",
        json={"signature_name": "classification", "examples": [{"pixels": pixels}]},
    )
    assert named.status_code == 200 and named.get_json() == plain.get_json()
    # The classify signature is another function (it parses serialized tf.Examples): the
    # ONNX runtime, which has the served graph alone, cannot run it.
    refused = client.post(
        "/v1/models/digits:predict",
        json={"signature_name": "classification", "instances": [digits[0][0].tolist()]},
    )
    assert refused.status_code == 400
    assert refused.get_json()["error"] == (
        "signature 'classification' cannot answer predict; for predict this model serves "
        "'serving_default', 'serve'"  # the export's endpoint, the same function
        " (other signatures run by name under the SavedModel runtime: "
        "--model-runtime NAME=savedmodel)"
    )

    # Any JSON type where the name goes is a 400, never a 500 (found by schemathesis).
    for verb, key in (("predict", "instances"), ("classify", "examples"), ("regress", "examples")):
        for value in ({}, [], 1, True):
            answer = client.post(
                f"/v1/models/digits:{verb}", json={"signature_name": value, key: [{}]}
            )
            assert answer.status_code == 400, (verb, value, answer.get_json())
            assert "'signature_name' must be a string" in answer.get_json()["error"]
