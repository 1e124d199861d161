"""Open Inference Protocol (KServe V2 / Triton) REST: health, metadata, readiness, infer.

Only wire formats live here; lookups go to the registry, validation to the V2 codec.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from service.http import json_response, registry, serving, statuses
from service.registry import AVAILABLE, ServedVersion
from service.request_body import read_body
from service.tensor_checks import body_may_hold_bool
from service.v2_codec import HEADER_LENGTH, decode_infer, encode_infer, tensor_metadata

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
    is_ready, _ = registry().readiness()
    return Response(status=200 if is_ready else 400)


@blueprint.get("/v2")
def server_metadata() -> Response:
    from tfship import __version__

    return json_response({"name": "tfship", "version": __version__, "extensions": EXTENSIONS})


@blueprint.get("/v2/models/<name>")
@blueprint.get("/v2/models/<name>/versions/<int:version>")
def model_metadata(name: str, version: int | None = None) -> Response:
    with serving(PROTOCOL, "metadata", name, version) as served:
        assert served.runtime is not None
        signature = served.runtime.signature
        return json_response(
            {
                "name": served.name,
                "versions": [
                    str(s.version) for s in registry().statuses(name) if s.state == AVAILABLE
                ],
                "platform": PLATFORMS[served.runtime_kind],
                "inputs": [tensor_metadata(spec) for spec in signature.inputs],
                "outputs": [tensor_metadata(spec) for spec in signature.outputs],
            }
        )


@blueprint.get("/v2/models/<name>/ready")
@blueprint.get("/v2/models/<name>/versions/<int:version>/ready")
def model_ready(name: str, version: int | None = None) -> Response:
    found = statuses(PROTOCOL, "ready", name, version)
    return Response(status=200 if any(s.state == AVAILABLE for s in found) else 400)


@blueprint.post("/v2/models/<name>/infer")
@blueprint.post("/v2/models/<name>/versions/<int:version>/infer")
def infer(name: str, version: int | None = None) -> Response:
    with serving(PROTOCOL, "infer", name, version) as served:
        body, headers = infer_body(served, read_body(), request.headers.get(HEADER_LENGTH))
        return Response(body, status=200, headers=headers)


def infer_body(
    served: ServedVersion, raw: bytes, header_length: str | None
) -> tuple[bytes, dict[str, str]]:
    """Response body and headers of an infer request on a held version.

    Shared by the Flask view above and the fast path (service/fast_path.py).
    """
    assert served.runtime is not None
    decoded = decode_infer(raw, header_length, served.runtime.signature, body_may_hold_bool(raw))
    outputs = served.predict(decoded.inputs, [o.name for o in decoded.outputs])
    return encode_infer(
        served.name, str(served.version), decoded, outputs, served.metadata.get("class_names")
    )
