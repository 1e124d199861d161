"""Open Inference Protocol over gRPC (``inference.GRPCInferenceService``): the service KServe,
Triton and MLServer expose, on the same port as TF Serving's services.

Each RPC body decodes its request, calls the dataplane and encodes the answer; the server
(grpc_server.py) wraps them all in the same envelope of keys, metrics, access line and
error codes as every other front door.
"""

from __future__ import annotations

from typing import Any

from service.codecs.v2_grpc_protos import DATA_TYPES, service_methods
from service.codecs.v2_grpc_tensors import decode_request, encode_response
from service.codecs.v2_tensors import tensor_metadata
from service.dataplane.call import Call
from service.dataplane.plane import DataPlane
from service.errors import InvalidArgument
from service.models.versions import AVAILABLE
from service.protocols.v2_vocabulary import EXTENSIONS, INDEX_STATES, config_of
from tfship.triton_config import PLATFORMS

SERVICE = "inference.GRPCInferenceService"
PROTOCOL = "v2_grpc"
# Server liveness and readiness: health, open when TFSHIP_AUTH_EXEMPT leaves health open,
# and (as REST's /v2/health/*) not counted as API requests.
HEALTH_METHODS = frozenset({"ServerLive", "ServerReady"})
_DATA_TYPE_NUMBER = {name: number for number, name in enumerate(DATA_TYPES)}


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
        from tfship import __version__

        return self._response(
            "ServerMetadata", name="tfship", version=__version__, extensions=EXTENSIONS
        )

    def model_metadata(self, request: Any, call: Call) -> Any:
        with self.plane.hold(call, request.name, _version(request.version)) as model:
            return self._response(
                "ModelMetadata",
                name=model.name,
                versions=[str(v) for v in self.plane.available_versions(model.name)],
                platform=PLATFORMS[model.runtime],
                inputs=[tensor_metadata(s) for s in model.signature.inputs],
                outputs=[tensor_metadata(s) for s in model.signature.outputs],
            )

    def model_infer(self, request: Any, call: Call) -> Any:
        if not request.model_name:
            raise InvalidArgument("model_name is empty: name the model")
        with self.plane.hold(call, request.model_name, _version(request.model_version)) as model:
            decoded = decode_request(request, model.signature)
            outputs = self.plane.predict(model, decoded.inputs, [o.name for o in decoded.outputs])
            return encode_response(
                model.name, str(model.version), decoded, outputs, list(model.class_names) or None
            )

    def model_config(self, request: Any, call: Call) -> Any:
        with self.plane.hold(call, request.name, _version(request.version)) as model:
            described = config_of(model, self.plane.settings.max_rows)
        response = self._response("ModelConfig")
        config = response.config
        config.name, config.platform = described["name"], described["platform"]
        config.backend, config.max_batch_size = described["backend"], described["max_batch_size"]
        for key, target in (("input", config.input), ("output", config.output)):
            for entry in described[key]:
                tensor = target.add(
                    name=entry["name"],
                    data_type=_DATA_TYPE_NUMBER[entry["data_type"]],
                    dims=entry["dims"],
                )
                if "reshape" in entry:
                    tensor.reshape.SetInParent()
                if "label_filename" in entry:
                    tensor.label_filename = entry["label_filename"]
        return response

    def repository_index(self, request: Any, call: Call) -> Any:
        response = self._response("RepositoryIndex")
        for name, status in self.plane.repository(call):
            if status is None:
                if not request.ready:
                    response.models.add(name=name)
                continue
            state = INDEX_STATES.get(status.state, "UNAVAILABLE")
            if request.ready and state != "READY":
                continue
            response.models.add(
                name=name, version=str(status.version), state=state, reason=status.error_message
            )
        return response
