"""TF Serving's REST API: model status, model metadata and predict.

Only wire formats live here; lookups go to the registry, validation to the codec.
"""

from __future__ import annotations

import orjson
from flask import Blueprint, Response, request

from service.errors import InvalidArgument
from service.http import json_response, lookup, registry
from service.tfserving_codec import decode_predict, encode_predict

blueprint = Blueprint("tfserving_rest", __name__)
PROTOCOL = "tfserving"


@blueprint.get("/v1/models/<name>")
@blueprint.get("/v1/models/<name>/versions/<int:version>")
def model_status(name: str, version: int | None = None) -> Response:
    served = lookup(PROTOCOL, "status", name, version)
    return json_response({"model_version_status": [served.status()]})


@blueprint.get("/v1/models/<name>/metadata")
@blueprint.get("/v1/models/<name>/versions/<int:version>/metadata")
def model_metadata(name: str, version: int | None = None) -> Response:
    served = lookup(PROTOCOL, "metadata", name, version)
    registry().ensure_available(served)
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
def predict(name: str, version: int | None = None) -> Response:
    served = lookup(PROTOCOL, "predict", name, version)
    registry().ensure_available(served)
    raw = request.get_data(cache=False)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"request body is not valid JSON: {exc}") from None
    assert served.runtime is not None  # ensure_available() passed
    # Booleans hidden among numbers need a walk of the whole body; skip it when the raw
    # text cannot contain one.
    may_hold_bool = b"true" in raw or b"false" in raw
    inputs, row_format = decode_predict(body, served.runtime.signature, may_hold_bool)
    outputs = served.runtime.predict(inputs)
    return json_response(encode_predict(outputs, row_format))
