"""TF Serving REST API against a real gunicorn server (ONNX runtime, two workers)."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pytest
from conftest import Server, TrainedRepo


def test_row_format_equals_in_process_onnxruntime(
    onnx_server: Server, trained_repo: TrainedRepo, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    rows = x[:32]
    answer = onnx_server.post("/v1/models/digits:predict", {"instances": rows.tolist()})
    assert answer.status == 200, answer.body
    assert answer.headers["Content-Type"] == "application/json"
    body = answer.json()
    assert list(body) == ["predictions"]
    served = np.asarray(body["predictions"], dtype=np.float32)
    # float32 survives the JSON round trip exactly: the same bits as in-process.
    np.testing.assert_array_equal(served, trained_repo.onnx_probabilities(rows))
    assert (served.argmax(axis=1) == y[:32]).mean() >= 0.9


def test_columnar_and_named_rows_give_the_same_answer(
    onnx_server: Server, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    rows = digits[0][100:105]
    by_rows = onnx_server.post("/v1/models/digits:predict", {"instances": rows.tolist()}).json()
    columnar = onnx_server.post("/v1/models/digits:predict", {"inputs": rows.tolist()})
    named_columns = onnx_server.post(
        "/v1/models/digits:predict", {"inputs": {"pixels": rows.tolist()}}
    )
    named_rows = onnx_server.post(
        "/v1/models/digits:predict",
        {"instances": [{"pixels": r.tolist()} for r in rows], "signature_name": "serving_default"},
    )
    assert list(columnar.json()) == ["outputs"]
    assert columnar.json()["outputs"] == by_rows["predictions"]
    assert named_columns.json()["outputs"] == by_rows["predictions"]
    assert named_rows.json()["predictions"] == by_rows["predictions"]


def test_version_path_and_integer_pixels(
    onnx_server: Server, trained_repo: TrainedRepo, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x = digits[0][:3]
    # Clients send raw 0..16 integers; they are taken as float32 pixels.
    answer = onnx_server.post(
        "/v1/models/digits/versions/1:predict", {"instances": x.astype(int).tolist()}
    )
    assert answer.status == 200
    np.testing.assert_array_equal(
        np.asarray(answer.json()["predictions"], dtype=np.float32),
        trained_repo.onnx_probabilities(x),
    )


def test_model_status_is_tf_serving_shaped(onnx_server: Server) -> None:
    expected = {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ],
        "ready": True,  # KServe's V1 readiness, read from the same path
    }
    assert onnx_server.get("/v1/models/digits").json() == expected
    assert onnx_server.get("/v1/models/digits/versions/1").json() == expected
    # KServe's V1 liveness.
    assert onnx_server.get("/").json() == {"status": "alive"}


def test_model_metadata_is_tf_serving_shaped(
    onnx_server: Server, trained_repo: TrainedRepo
) -> None:
    for path in ("/v1/models/digits/metadata", "/v1/models/digits/versions/1/metadata"):
        body = onnx_server.get(path).json()
        assert body["model_spec"] == {"name": "digits", "signature_name": "", "version": "1"}
        signature_defs = body["metadata"]["signature_def"]["signature_def"]
        assert signature_defs == trained_repo.metadata()["tf_serving_signature_def"]
        serving = signature_defs["serving_default"]
        pixels = serving["inputs"]["pixels"]
        assert pixels["dtype"] == "DT_FLOAT"
        assert pixels["name"] == "serving_default_pixels:0"
        assert pixels["tensor_shape"] == {
            "dim": [{"size": s, "name": ""} for s in ("-1", "8", "8", "1")],
            "unknown_rank": False,
        }
        assert serving["outputs"]["probabilities"]["dtype"] == "DT_FLOAT"
        assert serving["method_name"] == "tensorflow/serving/predict"


ROW = np.zeros((8, 8, 1)).tolist()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "request body is not valid JSON"),
        ('{"instances": [NaN]}', "request body holds NaN or Infinity, which JSON does not allow"),
        ('{"instances": [[1e999]]}', "request body is not valid JSON"),
        ("[1, 2]", "request body must be a JSON object with 'instances'"),
        ({}, "missing 'instances' (row format) or 'inputs' (columnar format)"),
        ({"instances": [ROW], "inputs": [ROW]}, "request has both 'instances' and 'inputs'"),
        ({"instances": []}, "'instances' is empty"),
        (
            {"instances": ROW[0]},
            "input 'pixels' in 'instances': expected shape [-1, 8, 8, 1] "
            "(rank 4), got shape [8, 1] (rank 2)",
        ),
        (
            {"instances": [[[0] * 7] * 8]},
            "input 'pixels' in 'instances': expected shape "
            "[-1, 8, 8, 1] (rank 4), got shape [1, 8, 7] (rank 3)",
        ),
        (
            {"instances": [[[[0]] * 7] * 8]},
            "input 'pixels' in 'instances': dimension 2 must be 8, "
            "got 7 (expected shape [-1, 8, 8, 1], got [1, 8, 7, 1])",
        ),
        ({"instances": [ROW, ROW[:7]]}, "input 'pixels' in 'instances': ragged nested lists"),
        (
            '{"instances": ' + "[" * 900 + "1" + "]" * 900 + "}",
            "expected shape [-1, 8, 8, 1] (rank 4), got lists nested 900 deep",
        ),
        ({"instances": [[[["a"]] * 8] * 8]}, "expected numbers of type float32, got strings"),
        ({"instances": [[[[True]] * 8] * 8]}, "expected numbers of type float32, got booleans"),
        (
            {"instances": [[[[1.0]] * 7 + [[True]]] * 8]},
            "expected numbers of type float32, got a boolean (true/false)",
        ),
        (
            {"instances": [[[[None]] * 8] * 8]},
            "expected numbers of type float32, got null or mixed",
        ),
        (
            {"instances": [{"image": ROW}]},
            "instance 0: missing 'pixels'; unknown 'image' input; the model's inputs are 'pixels'",
        ),
        ({"inputs": {"pixels": [ROW], "extra": [1]}}, "'inputs': unknown 'extra' input"),
        (
            {"instances": [ROW], "signature_name": "classify"},
            "signature 'classify' not found; this model serves 'serving_default'",
        ),
    ],
)
def test_bad_requests_get_400_with_a_message(
    onnx_server: Server, body: object, message: str
) -> None:
    payload = body if isinstance(body, str) else json.dumps(body)
    answer = onnx_server.post("/v1/models/digits:predict", payload)
    assert answer.status == 400, answer.body
    error = answer.json()["error"]
    assert message in error
    assert list(answer.json()) == ["error"]


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("GET", "/v1/models/nope", "model 'nope' not found (models served: digits)"),
        ("GET", "/v1/models/nope/metadata", "model 'nope' not found"),
        ("POST", "/v1/models/nope:predict", "model 'nope' not found"),
        (
            "GET",
            "/v1/models/digits/versions/7",
            "version 7 of model 'digits' is not served (versions: 1 AVAILABLE)",
        ),
        ("POST", "/v1/models/digits/versions/7:predict", "version 7 of model 'digits'"),
        ("GET", "/v2/nothing/here", "no such endpoint: GET /v2/nothing/here"),
    ],
)
def test_unknown_models_versions_and_paths_get_404(
    onnx_server: Server, method: str, path: str, message: str
) -> None:
    answer = (
        onnx_server.get(path) if method == "GET" else onnx_server.post(path, {"instances": [ROW]})
    )
    assert answer.status == 404
    assert message in answer.json()["error"]


def test_wrong_method_is_a_json_405(onnx_server: Server) -> None:
    for verb in ("predict", "classify", "regress"):
        # TF Serving's answer to a GET on a POST-only path: 400, "Malformed request".
        answer = onnx_server.get(f"/v1/models/digits:{verb}")
        assert answer.status == 400
        assert answer.json()["error"] == (
            f"Malformed request: GET /v1/models/digits:{verb}; :{verb} takes POST with a JSON body"
        )
    answer = onnx_server.post("/v1/models/digits", {"instances": [ROW]})
    assert answer.status == 405
    assert answer.json() == {
        "error": "method POST is not allowed on /v1/models/digits (allowed: GET, HEAD, OPTIONS)"
    }


def test_classify_labels_the_predicted_probabilities(
    onnx_server: Server, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    images = digits[0][:5]
    examples = [{"pixels": image.ravel().tolist()} for image in images]
    answer = onnx_server.post("/v1/models/digits:classify", {"examples": examples})
    assert answer.status == 200, answer.body
    result = answer.json()["results"]
    probabilities = np.array(
        onnx_server.post("/v1/models/digits:predict", {"instances": images.tolist()}).json()[
            "predictions"
        ]
    )
    assert len(result) == 5
    for row, expected in zip(result, probabilities, strict=True):
        assert [pair[0] for pair in row] == [str(d) for d in range(10)]
        np.testing.assert_allclose([pair[1] for pair in row], expected, atol=1e-6)
    # A shared context feature is merged into every example; the version path works too.
    with_context = onnx_server.post(
        "/v1/models/digits/versions/1:classify",
        {"context": {"pixels": images[0].ravel().tolist()}, "examples": [{}, {}]},
    )
    assert with_context.status == 200, with_context.body
    first, second = with_context.json()["results"]
    assert first == second
    np.testing.assert_allclose([pair[1] for pair in first], probabilities[0], atol=1e-6)


def test_regress_answers_one_value_per_example(mixed_server: Server) -> None:
    from onnx_models import linear_prediction

    rows = [[1.0, 2.0, 3.0], [4, 5, 6], [0.5, 0, -1]]
    answer = mixed_server.post(
        "/v1/models/linear:regress", {"examples": [{"features": row} for row in rows]}
    )
    assert answer.status == 200, answer.body
    np.testing.assert_allclose(answer.json()["results"], linear_prediction(np.array(rows)))


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (":classify", {"instances": [1]}, "must be a JSON object with 'examples'"),
        (":classify", {"examples": []}, "'examples' is empty"),
        (":classify", {"examples": {"pixels": 1}}, "'examples' must be a list, got dict"),
        (":classify", {"examples": [{"pix": [0] * 64}]}, "example 0 has no feature 'pixels'"),
        (
            ":classify",
            {"examples": [{"pixels": [0] * 63}]},
            "example 0, feature 'pixels': 63 values; the input takes 64 per example",
        ),
        (
            ":classify",
            {"examples": [{"pixels": [[0] * 8] * 8}]},
            "example 0, feature 'pixels': expected a value or a flat list of values",
        ),
        (":classify", {"examples": [{"pixels": ["a"] * 64}]}, "expected numbers, got strings"),
        (
            ":classify",
            {"signature_name": "other", "examples": [{"pixels": [0] * 64}]},
            "signature 'other' not found",
        ),
        (
            ":regress",
            {"examples": [{"pixels": [0] * 64}]},
            "model 'digits' is a classification model; regress needs a regression model",
        ),
    ],
)
def test_classify_and_regress_errors(
    onnx_server: Server, path: str, body: Any, message: str
) -> None:
    answer = onnx_server.post("/v1/models/digits" + path, body)
    assert answer.status == 400, answer.body
    assert message in answer.json()["error"]


def test_top_k_answers_class_names_and_scores_best_first(
    onnx_server: Server, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    images = digits[0][:4]
    full = np.array(
        onnx_server.post("/v1/models/digits:predict", {"instances": images.tolist()}).json()[
            "predictions"
        ]
    )
    best = np.argsort(-full, axis=1, kind="stable")[:, :3]
    rows = onnx_server.post(
        "/v1/models/digits:predict", {"instances": images.tolist(), "top_k": 3}
    ).json()["predictions"]
    for row, indices, scores in zip(rows, best, full, strict=True):
        assert row["classes"] == [str(i) for i in indices]
        np.testing.assert_allclose(row["scores"], scores[indices], atol=1e-6)
    columns = onnx_server.post(
        "/v1/models/digits:predict", {"inputs": images.tolist(), "top_k": 3}
    ).json()["outputs"]
    assert columns["classes"] == [row["classes"] for row in rows]
    classify = onnx_server.post(
        "/v1/models/digits:classify",
        {"examples": [{"pixels": image.ravel().tolist()} for image in images], "top_k": 2},
    ).json()["results"]
    assert [[label for label, _ in row] for row in classify] == [r["classes"][:2] for r in rows]
    for k, message in (
        (0, "'top_k' must be a positive integer, got 0"),
        (True, "'top_k' must be a positive integer, got True"),
        (11, "'top_k' is 11, the model has 10 classes"),
    ):
        answer = onnx_server.post(
            "/v1/models/digits:predict", {"instances": images.tolist(), "top_k": k}
        )
        assert answer.status == 400 and message in answer.json()["error"]


def test_float32_scores_are_written_at_float32_precision(
    onnx_server: Server, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    """A float32 needs at most 9 significant digits; 0.9999999403953552 is its float64
    widening, which a client reads as a precision the model does not have."""
    images = digits[0][:4]
    answers = [
        onnx_server.post("/v1/models/digits:predict", {"instances": images.tolist()}),
        onnx_server.post("/v1/models/digits:predict", {"instances": images.tolist(), "top_k": 3}),
        onnx_server.post(
            "/v1/models/digits:classify",
            {"examples": [{"pixels": image.ravel().tolist()} for image in images]},
        ),
    ]
    full = np.array(answers[0].json()["predictions"], dtype=np.float32)
    for answer in answers:
        assert answer.status == 200, answer.body
        numbers = re.findall(rb"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", answer.body)
        assert numbers
        for token in numbers:
            mantissa = token.split(b"e")[0].split(b"E")[0].lstrip(b"-").replace(b".", b"")
            assert len(mantissa.strip(b"0")) <= 9, token
            assert np.float32(float(token)) in full or float(token).is_integer(), token


def test_top_k_needs_a_classification_model(mixed_server: Server) -> None:
    answer = mixed_server.post("/v1/models/linear:predict", {"instances": [[1, 2, 3]], "top_k": 1})
    assert answer.status == 400
    assert (
        "'top_k' needs a classification model; model 'linear' is a regression model"
        in (answer.json()["error"])
    )
