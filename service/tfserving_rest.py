"""TF Serving's REST API: status, metadata, predict, classify and regress, by version or label.

Only wire formats live here; lookups go to the registry, validation to the codec.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from service import examples
from service.errors import InvalidArgument
from service.http import json_response, serving, statuses
from service.registry import ServedVersion
from service.request_body import parse_json, read_body
from service.tensor_checks import body_may_hold_bool
from service.tfserving_codec import decode_predict, encode_predict

blueprint = Blueprint("tfserving_rest", __name__)
PROTOCOL = "tfserving"


@blueprint.get("/v1/models/<name>")
@blueprint.get("/v1/models/<name>/versions/<int:version>")
@blueprint.get("/v1/models/<name>/labels/<label>")
def model_status(name: str, version: int | None = None, label: str | None = None) -> Response:
    found = statuses(PROTOCOL, "status", name, version, label)
    return json_response({"model_version_status": [s.status() for s in found]})


@blueprint.get("/v1/models/<name>/metadata")
@blueprint.get("/v1/models/<name>/versions/<int:version>/metadata")
@blueprint.get("/v1/models/<name>/labels/<label>/metadata")
def model_metadata(name: str, version: int | None = None, label: str | None = None) -> Response:
    with serving(PROTOCOL, "metadata", name, version, label) as served:
        return json_response(
            {
                "model_spec": {
                    "name": served.name,
                    "signature_name": "",
                    "version": str(served.version),
                },
                "metadata": {
                    "signature_def": {"signature_def": served.metadata["tf_serving_signature_def"]}
                },
            }
        )


@blueprint.post("/v1/models/<name>:predict")
@blueprint.post("/v1/models/<name>/versions/<int:version>:predict")
@blueprint.post("/v1/models/<name>/labels/<label>:predict")
def predict(name: str, version: int | None = None, label: str | None = None) -> Response:
    with serving(PROTOCOL, "predict", name, version, label) as served:
        return json_response(predict_body(served, read_body()))


def predict_body(served: ServedVersion, raw: bytes) -> Any:
    """The response body (before JSON encoding) of a predict request on a held version.

    Shared by the Flask view above and the fast path (service/fast_path.py).
    """
    body = _json_body(raw)
    assert served.runtime is not None  # serving() yields AVAILABLE versions only
    signature = served.runtime.signature
    # "top_k": k answers class names and scores, best first, instead of the tensor.
    k = _top_k(body, served)
    inputs, row_format = decode_predict(body, signature, body_may_hold_bool(raw))
    outputs = served.predict(inputs)
    if not k:
        return encode_predict(outputs, row_format)
    best = examples.top_k(served.name, served.metadata, signature, outputs, k)
    classes = [[label for label, _ in row] for row in best]
    scores = [[score for _, score in row] for row in best]
    if row_format:
        return {
            "predictions": [
                {"classes": c, "scores": s} for c, s in zip(classes, scores, strict=True)
            ]
        }
    return {"outputs": {"classes": classes, "scores": scores}}


@blueprint.post("/v1/models/<name>:classify")
@blueprint.post("/v1/models/<name>/versions/<int:version>:classify")
@blueprint.post("/v1/models/<name>/labels/<label>:classify")
def classify(name: str, version: int | None = None, label: str | None = None) -> Response:
    with serving(PROTOCOL, "classify", name, version, label) as served:
        assert served.runtime is not None
        signature = served.runtime.signature
        body = _json_body(read_body())
        k = _top_k(body, served)
        outputs = served.predict(_example_inputs(body, signature))
        result = (
            examples.top_k(name, served.metadata, signature, outputs, k)
            if k
            else examples.classifications(name, served.metadata, signature, outputs)
        )
        return json_response({"result": [[list(pair) for pair in row] for row in result]})


@blueprint.post("/v1/models/<name>:regress")
@blueprint.post("/v1/models/<name>/versions/<int:version>:regress")
@blueprint.post("/v1/models/<name>/labels/<label>:regress")
def regress(name: str, version: int | None = None, label: str | None = None) -> Response:
    with serving(PROTOCOL, "regress", name, version, label) as served:
        assert served.runtime is not None
        signature = served.runtime.signature
        outputs = served.predict(_example_inputs(_json_body(read_body()), signature))
        return json_response(
            {"result": examples.regressions(name, served.metadata, signature, outputs)}
        )


def _top_k(body: Any, served: ServedVersion) -> int:
    """tfship's extension to predict and classify: ``"top_k": k``; 0 when not asked."""
    if isinstance(body, dict) and "top_k" in body:
        return examples.parse_top_k(body["top_k"], served.name, served.metadata)
    return 0


def _json_body(raw: bytes) -> Any:
    return parse_json(raw)


def _example_inputs(body: Any, signature: Any) -> dict[str, Any]:
    """``{"examples": [...], "context": {...}}`` -> the model's inputs."""
    if not isinstance(body, dict) or "examples" not in body:
        raise InvalidArgument(
            "request body must be a JSON object with 'examples': a list of "
            "{feature name: value or list of values}"
        )
    examples.check_signature_name(body.get("signature_name"), signature)
    given = body["examples"]
    if not isinstance(given, list):
        raise InvalidArgument(f"'examples' must be a list, got {type(given).__name__}")
    parsed = [_features(e, f"example {i}") for i, e in enumerate(given)]
    context = _features(body["context"], "'context'") if body.get("context") else None
    return examples.examples_to_inputs(examples.merge_context(parsed, context), signature)


def _features(value: Any, where: str) -> dict[str, list[Any]]:
    if not isinstance(value, dict):
        raise InvalidArgument(f"{where} must be an object {{feature name: value or list}}")
    features = {}
    for key, item in value.items():
        values = item if isinstance(item, list) else [item]
        if any(isinstance(v, list | dict) for v in values):
            raise InvalidArgument(
                f"{where}, feature '{key}': expected a value or a flat list of values"
            )
        features[key] = values
    return features
