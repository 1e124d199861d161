"""Open Inference Protocol (KServe V2 / Triton) REST: health, metadata, readiness, infer,
and Triton's extensions its tools need: the repository index, model configuration and
statistics.

Only wire formats live here: each view decodes, calls the dataplane, encodes.
"""

from __future__ import annotations

from flask import Blueprint, Response, g, request

from service.codecs.json_body import parse_json
from service.codecs.v2_tensors import HEADER_LENGTH, decode_infer, encode_infer
from service.dataplane.plane import DataPlane
from service.errors import InvalidArgument
from service.models.model_view import ModelView
from service.models.versions import AVAILABLE
from service.protocols import v2_vocabulary as answers
from service.protocols.flask_calls import hold, plane, statuses
from service.protocols.json_responses import json_response
from service.protocols.request_body import read_body

blueprint = Blueprint("v2_rest", __name__)
PROTOCOL = "v2"


@blueprint.get("/v2/health/live")
def live() -> Response:
    return json_response({"live": True})


@blueprint.get("/v2/health/ready")
def ready() -> Response:
    # The status code is the protocol's answer (200, or 400 when not ready); the body is
    # what KServe's client reads.
    is_ready, _ = plane().ready()
    return json_response({"ready": is_ready}, 200 if is_ready else 400)


@blueprint.get("/v2")
def server_metadata() -> Response:
    return json_response(answers.server_metadata())


@blueprint.get("/v2/models/<name>")
@blueprint.get("/v2/models/<name>/versions/<int:version>")
def model_metadata(name: str, version: int | None = None) -> Response:
    with hold(name, version) as model:
        return json_response(answers.metadata_of(plane(), model))


@blueprint.get("/v2/models/<name>/ready")
@blueprint.get("/v2/models/<name>/versions/<int:version>/ready")
def model_ready(name: str, version: int | None = None) -> Response:
    found = statuses(name, version)
    is_ready = any(s.state == AVAILABLE for s in found)
    return json_response({"name": name, "ready": is_ready}, 200 if is_ready else 400)


@blueprint.get("/v2/models/<name>/config")
@blueprint.get("/v2/models/<name>/versions/<int:version>/config")
def model_configuration(name: str, version: int | None = None) -> Response:
    with hold(name, version) as model:
        return json_response(answers.config_of(model, plane().settings.max_rows))


@blueprint.get("/v2/models/stats")
@blueprint.get("/v2/models/<name>/stats")
@blueprint.get("/v2/models/<name>/versions/<int:version>/stats")
def model_statistics(name: str = "", version: int | None = None) -> Response:
    return json_response(answers.statistics(plane().statistics(g.call, name, version)))


@blueprint.post("/v2/repository/index")
def repository_index() -> Response:
    raw = read_body()
    body = parse_json(raw) if raw.strip() else {}
    if not isinstance(body, dict) or not isinstance(body.get("ready", False), bool):
        raise InvalidArgument('request body must be {} or {"ready": true|false}')
    return json_response(answers.repository_index(plane(), g.call, body.get("ready", False)))


@blueprint.post("/v2/models/<name>/infer")
@blueprint.post("/v2/models/<name>/versions/<int:version>/infer")
def infer(name: str, version: int | None = None) -> Response:
    with hold(name, version) as model:
        raw = read_body()
        body, headers = infer_body(plane(), model, raw, request.headers.get(HEADER_LENGTH))
        return Response(body, status=200, headers=headers)


def infer_body(
    dataplane: DataPlane, model: ModelView, raw: bytes | memoryview, header_length: str | None
) -> tuple[bytes, dict[str, str]]:
    """Response body and headers of an infer request on a held version.

    Shared by the Flask view above and the fast path (service/protocols/fast_path.py).
    """
    decoded = decode_infer(
        raw,
        header_length,
        model.signature,
        dataplane.limits,
        dataplane.allow_non_finite,
    )
    outputs = dataplane.predict(model, decoded.inputs, [o.name for o in decoded.outputs])
    return encode_infer(
        model.name, str(model.version), decoded, outputs, list(model.class_names) or None
    )
