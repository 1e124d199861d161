"""Open Inference Protocol over gRPC (``inference.GRPCInferenceService``): the service KServe,
Triton and MLServer expose, on the same port as TF Serving's services.

Each RPC body decodes its request, calls the dataplane and encodes the answer; the server
(grpc_server.py) wraps them all in the same envelope of keys, metrics, access line and
error codes as every other front door.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from service.codecs.v2_grpc_protos import service_methods
from service.codecs.v2_grpc_tensors import decode_request, encode_response
from service.dataplane.call import Call
from service.dataplane.plane import DataPlane
from service.errors import InvalidArgument
from service.models.versions import AVAILABLE
from service.protocols import v2_vocabulary as answers

SERVICE = "inference.GRPCInferenceService"
PROTOCOL = "v2_grpc"
# Server liveness and readiness: health, open when TFSHIP_AUTH_EXEMPT leaves health open,
# and (as REST's /v2/health/*) not counted as API requests.
HEALTH_METHODS = frozenset({"ServerLive", "ServerReady"})


def _version(text: str) -> int | None:
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise InvalidArgument(f"model_version {text!r} must be empty or a positive integer")
    return int(text)


class V2Handlers:
    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane
        self.methods = service_methods()

    def _response(self, method: str, **fields: Any) -> Any:
        return self.methods[method][1](**fields)

    def _parsed(self, method: str, answer: dict[str, Any]) -> Any:
        """The response message of ``method`` from the answer REST sends as JSON."""
        return json_format.ParseDict(answer, self._response(method))

    def table(self) -> dict[str, tuple[str | None, Any]]:
        """Method -> (api label, None for calls not counted as API requests; body)."""
        return {
            "ServerLive": (None, self.server_live),
            "ServerReady": (None, self.server_ready),
            "ModelReady": ("ready", self.model_ready),
            "ServerMetadata": (None, self.server_metadata),
            "ModelMetadata": ("metadata", self.model_metadata),
            "ModelInfer": ("infer", self.model_infer),
            "ModelConfig": ("config", self.model_config),
            "RepositoryIndex": ("repository_index", self.repository_index),
            "ModelStatistics": ("stats", self.model_statistics),
        }

    def server_live(self, request: Any, call: Call) -> Any:
        return self._response("ServerLive", live=True)

    def server_ready(self, request: Any, call: Call) -> Any:
        # A channel stays with the worker it reached: its readiness is the answer.
        ready, _ = self.plane.ready(this_worker=True)
        return self._response("ServerReady", ready=ready)

    def model_ready(self, request: Any, call: Call) -> Any:
        found = self.plane.statuses(call, request.name, _version(request.version))
        return self._response("ModelReady", ready=any(s.state == AVAILABLE for s in found))

    def server_metadata(self, request: Any, call: Call) -> Any:
        return self._parsed("ServerMetadata", answers.server_metadata())

    def model_metadata(self, request: Any, call: Call) -> Any:
        with self.plane.hold(call, request.name, _version(request.version)) as model:
            return self._parsed("ModelMetadata", answers.metadata_of(self.plane, model))

    def model_infer(self, request: Any, call: Call) -> Any:
        if not request.model_name:
            raise InvalidArgument("model_name is empty: name the model")
        with self.plane.hold(call, request.model_name, _version(request.model_version)) as model:
            decoded = decode_request(request, model.signature, self.plane.limits)
            outputs = self.plane.predict(model, decoded.inputs, [o.name for o in decoded.outputs])
            return encode_response(
                model.name, str(model.version), decoded, outputs, list(model.class_names) or None
            )

    def model_config(self, request: Any, call: Call) -> Any:
        with self.plane.hold(call, request.name, _version(request.version)) as model:
            config = answers.config_of(model, self.plane.settings.max_rows)
        return self._parsed("ModelConfig", {"config": config})

    def repository_index(self, request: Any, call: Call) -> Any:
        index = answers.repository_index(self.plane, call, request.ready)
        return self._parsed("RepositoryIndex", {"models": index})

    def model_statistics(self, request: Any, call: Call) -> Any:
        found = self.plane.statistics(call, request.name, _version(request.version))
        return self._parsed("ModelStatistics", answers.statistics(found))
