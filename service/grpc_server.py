"""gRPC: TF Serving's PredictionService and ModelService, and the standard health service.

The server runs inside every gunicorn worker (started by ``post_worker_init`` in
gunicorn.conf.py) and uses that worker's registry, so a model is loaded once per worker
whichever protocol calls it. Every worker binds the same port with ``SO_REUSEPORT``; the
kernel spreads new connections over the workers, and a worker that dies takes only its own
connections with it (clients reconnect to the others).

Messages come from service/grpc_protos.py (no TensorFlow import). Errors map to the gRPC
codes TF Serving uses; metrics and access lines record the matching HTTP status, so one
``status`` label means the same for every protocol.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import json_format
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from service import examples, logs
from service import tfserving_messages as messages
from service.auth import ApiKeys, Client, api_keys_for
from service.errors import (
    InvalidArgument,
    Overloaded,
    ServingError,
    Unauthenticated,
    Unimplemented,
    internal_error,
)
from service.grpc_protos import enum_values, message, service_methods
from service.metrics import NO_MODEL, observe_queue, observe_request
from service.registry import Registry, ServedVersion
from service.settings import ServiceSettings
from service.tensor_proto import write_tensor

log = logging.getLogger("tfship.grpc")
PROTOCOL = "grpc"
PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"

_CODE_FOR_STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
_STATE = enum_values("tensorflow.serving.ModelVersionStatus.State")
_ERROR_CODE = enum_values("tensorflow.error.Code")
_SignatureDefMap = message("tensorflow.serving.SignatureDefMap")


class _QueueTimedPool(ThreadPoolExecutor):
    """gRPC hands each call to this pool; the wait for a free thread is the queue time."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        queued = time.perf_counter()

        def timed() -> Any:
            observe_queue(PROTOCOL, time.perf_counter() - queued)
            return fn(*args, **kwargs)

        return super().submit(timed)


class _HealthAuth(grpc.ServerInterceptor):
    """Keys for the health service too, when TFSHIP_AUTH_EXEMPT does not leave it open (the
    TF Serving services check keys in their own handlers, where the model is known)."""

    def __init__(self, keys: ApiKeys) -> None:
        self.keys = keys

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        if not details.method.startswith("/grpc.health.v1.Health/"):
            return continuation(details)
        try:
            self.keys.authenticate(dict(details.invocation_metadata))
        except Unauthenticated as exc:
            message = exc.message

            def refuse(request: Any, context: grpc.ServicerContext) -> Any:
                context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

            if details.method.endswith("/Watch"):
                return grpc.unary_stream_rpc_method_handler(refuse)
            return grpc.unary_unary_rpc_method_handler(refuse)
        return continuation(details)


@dataclass
class _Call:
    """What a call's metrics and access line need, filled in as the call proceeds."""

    method: str
    api: str
    request_id: str
    peer: str
    started: float
    model: str = NO_MODEL
    version: str = ""
    client: Client | None = None

    def finish(self, status: int, code: grpc.StatusCode, access_log: bool) -> None:
        seconds = time.perf_counter() - self.started
        observe_request(self.model, self.version, PROTOCOL, self.api, status, seconds)
        if access_log:
            logs.log_rpc(
                {
                    "method": "POST",
                    "path": self.method,
                    "status": status,
                    "grpc_code": code.name,
                    "latency_ms": round(seconds * 1000, 3),
                    "protocol": PROTOCOL,
                    "api": self.api,
                    "model": self.model or None,
                    "version": self.version or None,
                    "remote": self.peer,
                    "request_id": self.request_id,
                    **({"client": self.client.name} if self.client else {}),
                }
            )


def _version_choice(spec: Any) -> tuple[int | None, str | None]:
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return spec.version.value, None
    if choice == "version_label":
        return None, spec.version_label or None
    return None, None


class TFServingHandlers:
    """The RPC bodies; each takes the request and the call record, returns the response."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.prediction = service_methods(PREDICTION_SERVICE)
        self.model = service_methods(MODEL_SERVICE)

    def _target(self, call: _Call, spec: Any) -> tuple[int | None, str | None]:
        """Check a ModelSpec's name (and the key's right to it); the version or label."""
        if not spec.name:
            raise InvalidArgument("model_spec.name is empty: name the model")
        if call.client is not None:
            call.client.check_model(spec.name)
        if self.registry.has_model(spec.name):
            call.model = spec.name  # known: label the call even if the lookup then fails
        return _version_choice(spec)

    @contextmanager
    def _serving(self, call: _Call, spec: Any) -> Iterator[ServedVersion]:
        version, label = self._target(call, spec)
        with self.registry.serving(spec.name, version, label) as served:
            call.model, call.version = served.name, str(served.version)
            yield served

    @staticmethod
    def _fill_spec(target: Any, served: ServedVersion, signature_name: str) -> None:
        target.name = served.name
        target.version.value = served.version
        target.signature_name = signature_name

    def predict(self, request: Any, call: _Call) -> Any:
        with self._serving(call, request.model_spec) as served:
            assert served.runtime is not None
            signature = served.runtime.signature
            inputs, wanted = messages.predict_inputs(request, signature)
            outputs = served.predict(inputs, wanted)
            response = self.prediction["Predict"][1]()
            self._fill_spec(response.model_spec, served, signature.name)
            for name, array in outputs.items():
                write_tensor(response.outputs[name], array)
            return response

    def classify(self, request: Any, call: _Call) -> Any:
        with self._serving(call, request.model_spec) as served:
            assert served.runtime is not None
            signature = served.runtime.signature
            inputs = messages.example_inputs(request, signature)
            result = examples.classifications(
                served.name, served.metadata, signature, served.predict(inputs)
            )
            response = self.prediction["Classify"][1]()
            self._fill_spec(response.model_spec, served, signature.name)
            for row in result:
                classes = response.result.classifications.add().classes
                for label, score in row:
                    entry = classes.add()
                    entry.label, entry.score = label, score
            return response

    def regress(self, request: Any, call: _Call) -> Any:
        with self._serving(call, request.model_spec) as served:
            assert served.runtime is not None
            signature = served.runtime.signature
            inputs = messages.example_inputs(request, signature)
            values = examples.regressions(
                served.name, served.metadata, signature, served.predict(inputs)
            )
            response = self.prediction["Regress"][1]()
            self._fill_spec(response.model_spec, served, signature.name)
            for value in values:
                response.result.regressions.add().value = value
            return response

    def get_model_metadata(self, request: Any, call: _Call) -> Any:
        fields = list(request.metadata_field)
        if not fields:
            raise InvalidArgument("metadata_field is empty: ask for 'signature_def'")
        unknown = [f for f in fields if f != "signature_def"]
        if unknown:
            raise InvalidArgument(
                f"metadata field '{unknown[0]}' is not served; the one field is 'signature_def'"
            )
        with self._serving(call, request.model_spec) as served:
            signature_defs = _SignatureDefMap()
            json_format.ParseDict(
                {"signature_def": served.metadata["tf_serving_signature_def"]}, signature_defs
            )
            response = self.prediction["GetModelMetadata"][1]()
            self._fill_spec(response.model_spec, served, "")
            response.metadata["signature_def"].Pack(signature_defs)
            return response

    def get_model_status(self, request: Any, call: _Call) -> Any:
        spec = request.model_spec
        version, label = self._target(call, spec)
        found = self.registry.statuses(spec.name, version, label)
        if len(found) == 1:
            call.version = str(found[0].version)
        response = self.model["GetModelStatus"][1]()
        for served in found:
            entry = response.model_version_status.add()
            entry.version = served.version
            entry.state = _STATE[served.state]
            entry.status.error_code = _ERROR_CODE.get(served.error_code, _ERROR_CODE["UNKNOWN"])
            entry.status.error_message = served.error_message
        return response

    def not_implemented(self, request: Any, call: _Call) -> Any:
        raise Unimplemented(f"{call.method} is not implemented by tfship")


class GrpcServer:
    """The gRPC server of one worker, with a health service that follows the registry."""

    def __init__(self, registry: Registry, settings: ServiceSettings) -> None:
        self.settings = settings
        self.registry = registry
        self.handlers = TFServingHandlers(registry)
        self.keys = api_keys_for(settings)
        self.health = health.HealthServicer()
        self._health_models: set[str] = set()
        self._server = grpc.server(
            _QueueTimedPool(max_workers=settings.grpc_threads, thread_name_prefix="grpc"),
            interceptors=[_HealthAuth(self.keys)]
            if self.keys is not None and "health" not in self.keys.exempt
            else [],
            options=[
                ("grpc.so_reuseport", 1),
                ("grpc.max_receive_message_length", settings.max_body_bytes),
                ("grpc.max_send_message_length", -1),
            ],
        )
        h = self.handlers
        self._server.add_generic_rpc_handlers(
            (
                self._service(
                    PREDICTION_SERVICE,
                    h.prediction,
                    {
                        "Predict": ("predict", h.predict),
                        "Classify": ("classify", h.classify),
                        "Regress": ("regress", h.regress),
                        "GetModelMetadata": ("metadata", h.get_model_metadata),
                        "MultiInference": ("multi_inference", h.not_implemented),
                    },
                ),
                self._service(
                    MODEL_SERVICE,
                    h.model,
                    {
                        "GetModelStatus": ("status", h.get_model_status),
                        "HandleReloadConfigRequest": ("reload_config", h.not_implemented),
                    },
                ),
            )
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        registry.add_listener(self._update_health)
        self._update_health()

    def _service(
        self,
        service: str,
        methods: dict[str, tuple[Any, Any]],
        bodies: dict[str, tuple[str, Callable[[Any, _Call], Any]]],
    ) -> grpc.GenericRpcHandler:
        handlers = {}
        for method, (request_type, response_type) in methods.items():
            api, body = bodies[method]
            handlers[method] = grpc.unary_unary_rpc_method_handler(
                self._wrap(f"/{service}/{method}", api, body),
                request_deserializer=request_type.FromString,
                response_serializer=response_type.SerializeToString,
            )
        return grpc.method_handlers_generic_handler(service, handlers)

    def _wrap(
        self, method: str, api: str, body: Callable[[Any, _Call], Any]
    ) -> Callable[[Any, grpc.ServicerContext], Any]:
        access_log = self.settings.access_log

        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            metadata = dict(context.invocation_metadata())
            call = _Call(
                method,
                api,
                logs.request_id_from(str(metadata.get("x-request-id", ""))),
                context.peer(),
                time.perf_counter(),
            )
            context.send_initial_metadata((("x-request-id", call.request_id),))
            try:
                if self.keys is not None:
                    call.client = self.keys.authenticate(metadata)
                response = body(request, call)
            except ServingError as exc:
                code = (
                    grpc.StatusCode.RESOURCE_EXHAUSTED
                    if isinstance(exc, Overloaded)
                    else _CODE_FOR_STATUS.get(exc.status, grpc.StatusCode.INTERNAL)
                )
                call.finish(exc.status, code, access_log)
                context.abort(code, exc.message)
            except Exception as exc:  # a bug: log it, answer INTERNAL, keep serving
                log.exception("unhandled error in %s", method)
                call.finish(500, grpc.StatusCode.INTERNAL, access_log)
                context.abort(grpc.StatusCode.INTERNAL, internal_error(exc))
            call.finish(200, grpc.StatusCode.OK, access_log)
            return response

        return handle

    def _update_health(self) -> None:
        """Overall health is readiness; each model is SERVING while it has a version up."""
        serving, not_serving = (
            health_pb2.HealthCheckResponse.SERVING,
            health_pb2.HealthCheckResponse.NOT_SERVING,
        )
        ready, report = self.registry.readiness()
        overall = serving if ready else not_serving
        self.health.set("", overall)
        self.health.set(PREDICTION_SERVICE, overall)
        self.health.set(MODEL_SERVICE, overall)
        for name, model in report["models"].items():
            self.health.set(name, serving if model["serving"] is not None else not_serving)
        # A model no longer served answers NOT_SERVING, not its last state.
        for name in self._health_models - set(report["models"]):
            self.health.set(name, not_serving)
        self._health_models |= set(report["models"])

    def start(self) -> int:
        host = f"[{self.settings.host}]" if ":" in self.settings.host else self.settings.host
        address = f"{host}:{self.settings.grpc_port}"
        try:
            port = self._server.add_insecure_port(address)
        except RuntimeError as exc:
            raise RuntimeError(f"gRPC: cannot listen on {address}: {exc}") from None
        if port == 0:
            raise RuntimeError(f"gRPC: cannot listen on {address}")
        self._server.start()
        log.info("gRPC listening on %s", address)
        return port

    def stop(self, grace: float) -> None:
        """Report NOT_SERVING, refuse new calls, let running calls end within ``grace``."""
        self.health.enter_graceful_shutdown()
        self._server.stop(grace).wait(grace + 1)
