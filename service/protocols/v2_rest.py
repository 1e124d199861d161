"""Open Inference Protocol (KServe V2 / Triton) REST: health, metadata, readiness, infer.

Only wire formats live here: each view decodes, calls the dataplane, encodes.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from service.codecs.tensor_checks import body_may_hold_bool
from service.codecs.v2_tensors import HEADER_LENGTH, decode_infer, encode_infer, tensor_metadata
from service.dataplane.plane import DataPlane
from service.models.model_view import ModelView
from service.models.versions import AVAILABLE
from service.protocols.flask_calls import hold, plane, statuses
from service.protocols.json_responses import json_response
from service.protocols.request_body import read_body

blueprint = Blueprint("v2_rest", __name__)
PROTOCOL = "v2"

# Triton's platform names, so V2 clients that branch on them see familiar values.
PLATFORMS = {"onnx": "onnxruntime_onnx", "savedmodel": "tensorflow_savedmodel"}
EXTENSIONS = ["binary_tensor_data", "classification"]


@blueprint.get("/v2/health/live")
def live() -> Response:
    return Response(status=200)


@blueprint.get("/v2/health/ready")
def ready() -> Response:
    # The protocol reports readiness by status code alone: 200 or a 4xx.
    is_ready, _ = plane().ready()
    return Response(status=200 if is_ready else 400)


@blueprint.get("/v2")
def server_metadata() -> Response:
    from tfship import __version__

    return json_response({"name": "tfship", "version": __version__, "extensions": EXTENSIONS})


@blueprint.get("/v2/models/<name>")
@blueprint.get("/v2/models/<name>/versions/<int:version>")
def model_metadata(name: str, version: int | None = None) -> Response:
    with hold(name, version) as model:
        return json_response(
            {
                "name": model.name,
                "versions": [str(v) for v in plane().available_versions(name)],
                "platform": PLATFORMS[model.runtime],
                "inputs": [tensor_metadata(spec) for spec in model.signature.inputs],
                "outputs": [tensor_metadata(spec) for spec in model.signature.outputs],
            }
        )


@blueprint.get("/v2/models/<name>/ready")
@blueprint.get("/v2/models/<name>/versions/<int:version>/ready")
def model_ready(name: str, version: int | None = None) -> Response:
    found = statuses(name, version)
    return Response(status=200 if any(s.state == AVAILABLE for s in found) else 400)


@blueprint.post("/v2/models/<name>/infer")
@blueprint.post("/v2/models/<name>/versions/<int:version>/infer")
def infer(name: str, version: int | None = None) -> Response:
    with hold(name, version) as model:
        raw = read_body()
        body, headers = infer_body(plane(), model, raw, request.headers.get(HEADER_LENGTH))
        return Response(body, status=200, headers=headers)


def infer_body(
    dataplane: DataPlane, model: ModelView, raw: bytes, header_length: str | None
) -> tuple[bytes, dict[str, str]]:
    """Response body and headers of an infer request on a held version.

    Shared by the Flask view above and the fast path (service/protocols/fast_path.py).
    """
    decoded = decode_infer(
        raw, header_length, model.signature, body_may_hold_bool(raw), dataplane.allow_non_finite
    )
    outputs = dataplane.predict(model, decoded.inputs, [o.name for o in decoded.outputs])
    return encode_infer(
        model.name, str(model.version), decoded, outputs, list(model.class_names) or None
    )
