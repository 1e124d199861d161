"""TF Serving's REST API: status, metadata, predict, classify and regress, by version or label.

Only wire formats live here: each view decodes, calls the dataplane, encodes.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from flask import Blueprint, Response, request

from service.codecs import example_features
from service.codecs.json_body import parse_json
from service.codecs.json_floats import json_float
from service.codecs.json_tensors import parse_tensor_body
from service.codecs.tensor_checks import DeclaredLimits, check_rows
from service.codecs.tfserving_json import PREDICT_TENSORS, decode_predict, encode_predict
from service.dataplane import tasks
from service.dataplane.plane import DataPlane
from service.errors import InvalidArgument
from service.models.model_view import ModelView
from service.models.runtimes.base import Signature
from service.models.versions import AVAILABLE
from service.protocols.flask_calls import hold, plane, statuses
from service.protocols.json_responses import json_response
from service.protocols.request_body import read_body

blueprint = Blueprint("tfserving_rest", __name__)
PROTOCOL = "tfserving"


@blueprint.get("/v1/models/<name>")
@blueprint.get("/v1/models/<name>/versions/<int:version>")
@blueprint.get("/v1/models/<name>/labels/<label>")
def model_status(name: str, version: int | None = None, label: str | None = None) -> Response:
    _refuse_verb_in_get(name if label is None else label)
    found = statuses(name, version, label)
    return json_response(
        {
            "model_version_status": [
                {
                    "version": str(s.version),
                    "state": s.state,
                    "status": {"error_code": s.error_code, "error_message": s.error_message},
                }
                for s in found
            ],
            # KServe's V1 readiness reads this key from the same path; JSON readers of TF
            # Serving's status pass over it (a strict protobuf parse needs
            # ignore_unknown_fields, as for any newer TF Serving field).
            "ready": any(s.state == AVAILABLE for s in found),
        }
    )


def _refuse_verb_in_get(last: str) -> None:
    """``GET .../digits:predict`` reaches the status route with the name 'digits:predict';
    TF Serving answers such a request 400 "Malformed request", not "model not found"."""
    _, colon, verb = last.rpartition(":")
    if colon and verb in ("predict", "classify", "regress"):
        raise InvalidArgument(
            f"Malformed request: GET {request.path}; :{verb} takes POST with a JSON body"
        )


@blueprint.get("/v1/models/<name>/metadata")
@blueprint.get("/v1/models/<name>/versions/<int:version>/metadata")
@blueprint.get("/v1/models/<name>/labels/<label>/metadata")
def model_metadata(name: str, version: int | None = None, label: str | None = None) -> Response:
    with hold(name, version, label) as model:
        return json_response(
            {
                "model_spec": {
                    "name": model.name,
                    "signature_name": "",
                    "version": str(model.version),
                },
                "metadata": {"signature_def": {"signature_def": model.signature_defs}},
            }
        )


@blueprint.post("/v1/models/<name>:predict")
@blueprint.post("/v1/models/<name>/versions/<int:version>:predict")
@blueprint.post("/v1/models/<name>/labels/<label>:predict")
def predict(name: str, version: int | None = None, label: str | None = None) -> Response:
    with hold(name, version, label) as model:
        return json_response(predict_body(plane(), model, read_body()))


def predict_body(dataplane: DataPlane, model: ModelView, raw: bytes | memoryview) -> Any:
    """The response body (before JSON encoding) of a predict request on a held version.

    Shared by the Flask view above and the fast path (service/protocols/fast_path.py).
    """
    body, may_hold_bool = parse_tensor_body(
        raw, PREDICT_TENSORS, model.takes_numbers_only(), dataplane.allow_non_finite
    )
    if isinstance(body, dict):
        model = model.signature_named(body.get("signature_name"))
    # "top_k": k answers class names and scores, best first, instead of the tensor.
    k = _top_k(body, model)
    inputs, row_format = decode_predict(body, model.signature, may_hold_bool)
    if not k:
        return encode_predict(dataplane.predict(model, inputs), row_format)
    best = dataplane.classify(model, inputs, k)
    classes = [[label for label, _ in row] for row in best]
    scores = [[json_float(score) for _, score in row] for row in best]
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
    with hold(name, version, label) as model:
        body = parse_json(read_body(), allow_non_finite=plane().allow_non_finite)
        k = _top_k(body, model)
        result = plane().classify(
            model, _example_inputs(body, model.signature, "classify", plane().limits), k
        )
        return json_response(
            {"results": [[[label, json_float(score)] for label, score in row] for row in result]}
        )


@blueprint.post("/v1/models/<name>:regress")
@blueprint.post("/v1/models/<name>/versions/<int:version>:regress")
@blueprint.post("/v1/models/<name>/labels/<label>:regress")
def regress(name: str, version: int | None = None, label: str | None = None) -> Response:
    with hold(name, version, label) as model:
        body = parse_json(read_body(), allow_non_finite=plane().allow_non_finite)
        inputs = _example_inputs(body, model.signature, "regress", plane().limits)
        return json_response({"results": [json_float(v) for v in plane().regress(model, inputs)]})


def _top_k(body: Any, model: ModelView) -> int:
    """tfship's extension to predict and classify: ``"top_k": k``; 0 when not asked."""
    if isinstance(body, dict) and "top_k" in body:
        return tasks.parse_top_k(body["top_k"], model)
    return 0


def _example_inputs(
    body: Any, signature: Signature, api: str, limits: DeclaredLimits
) -> dict[str, Any]:
    """``{"examples": [...], "context": {...}}`` -> the model's inputs (``api``: classify or
    regress, for the signature names it may give)."""
    if not isinstance(body, dict) or "examples" not in body:
        raise InvalidArgument(
            "request body must be a JSON object with 'examples': a list of "
            "{feature name: value or list of values}"
        )
    example_features.check_signature_name(body.get("signature_name"), signature, api)
    given = body["examples"]
    if not isinstance(given, list):
        raise InvalidArgument(f"'examples' must be a list, got {type(given).__name__}")
    check_rows(len(given), limits.max_rows)
    parsed = [_features(e, f"example {i}") for i, e in enumerate(given)]
    shared = body.get("context")
    if shared is not None and not isinstance(shared, dict):
        raise InvalidArgument(
            f"'context' must be an object {{feature name: value or list}}, got "
            f"{type(shared).__name__}"
        )
    context = _features(shared, "'context'") if shared else None
    return example_features.examples_to_inputs(parsed, signature, context)


def _features(value: Any, where: str) -> dict[str, list[Any]]:
    if not isinstance(value, dict):
        raise InvalidArgument(f"{where} must be an object {{feature name: value or list}}")
    features = {}
    for key, item in value.items():
        values = item if isinstance(item, list) else [item]
        # TF Serving's encoding of a bytes feature, {"b64": "..."}: bytes, as gRPC's
        # bytes_list gives them (example parsing then decodes them as UTF-8 text).
        values = [_b64_bytes(v, where, key) if isinstance(v, dict) else v for v in values]
        if any(isinstance(v, list) for v in values):
            raise InvalidArgument(
                f"{where}, feature '{key}': expected a value or a flat list of values"
            )
        features[key] = values
    return features


def _b64_bytes(value: dict[str, Any], where: str, key: str) -> bytes:
    encoded = value.get("b64")
    if set(value) != {"b64"} or not isinstance(encoded, str):
        raise InvalidArgument(
            f"{where}, feature '{key}': an object value must be {{\"b64\": base64 text}}"
        )
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise InvalidArgument(f"{where}, feature '{key}': 'b64' is not valid base64") from None
