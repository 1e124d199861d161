"""TF Serving's REST API: model status, model metadata and predict, by version or label.

Only wire formats live here; lookups go to the registry, validation to the codec.
"""

from __future__ import annotations

import orjson
from flask import Blueprint, Response, request

from service.errors import InvalidArgument
from service.http import json_response, serving, statuses
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
        raw = request.get_data(cache=False)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidArgument(f"request body is not valid JSON: {exc}") from None
        assert served.runtime is not None  # serving() yields AVAILABLE versions only
        inputs, row_format = decode_predict(body, served.runtime.signature, body_may_hold_bool(raw))
        outputs = served.predict(inputs)
        return json_response(encode_predict(outputs, row_format))
