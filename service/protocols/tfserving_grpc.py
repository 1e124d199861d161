"""gRPC: TF Serving's PredictionService and ModelService, and the standard health service.

The server runs inside every gunicorn worker (started by ``post_worker_init`` in
gunicorn.conf.py) and uses that worker's registry, so a model is loaded once per worker
whichever protocol calls it. Every worker binds the same port with ``SO_REUSEPORT``; the
kernel spreads new connections over the workers, and a worker that dies takes only its own
connections with it (clients reconnect to the others).

Messages come from service/codecs/grpc_protos.py (no TensorFlow import). Errors map to the gRPC
codes TF Serving uses; metrics and access lines record the matching HTTP status, so one
``status`` label means the same for every protocol.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import grpc
from google.protobuf import json_format

from service import logs
from service.auth import ApiKeys
from service.codecs import tfserving_requests as messages
from service.codecs.grpc_protos import enum_values, message, service_methods
from service.codecs.tensor_proto import write_tensor
from service.dataplane.call import Call
from service.dataplane.plane import DataPlane
from service.errors import (
    InvalidArgument,
    ServingError,
    Unauthenticated,
    Unimplemented,
    internal_error,
)
from service.metrics import observe_queue
from service.models.model_view import ModelView
from service.protocols.grpc_health import NOT_SERVING, SERVING, HealthService
from service.settings import ServiceSettings

log = logging.getLogger("tfship.grpc")
PROTOCOL = "grpc"
PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"

_STATE = enum_values("tensorflow.serving.ModelVersionStatus.State")
_ERROR_CODE = enum_values("tensorflow.error.Code")
_SignatureDefMap = message("tensorflow.serving.SignatureDefMap")
# An RPC body: the request message and the call record in, the response message out.
Body = Callable[[Any, Call], Any]


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


def _version_choice(spec: Any) -> tuple[int | None, str | None]:
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return spec.version.value, None
    if choice == "version_label":
        return None, spec.version_label or None
    return None, None


class TFServingHandlers:
    """The RPC bodies: each decodes its request, calls the dataplane, encodes the answer."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane
        self.prediction = service_methods(PREDICTION_SERVICE)
        self.model = service_methods(MODEL_SERVICE)

    @staticmethod
    def _target(spec: Any) -> tuple[str, int | None, str | None]:
        """A ModelSpec's name, version and label."""
        if not spec.name:
            raise InvalidArgument("model_spec.name is empty: name the model")
        return (spec.name, *_version_choice(spec))

    @contextmanager
    def _hold(self, call: Call, spec: Any) -> Iterator[ModelView]:
        with self.plane.hold(call, *self._target(spec)) as model:
            yield model

    @staticmethod
    def _fill_spec(target: Any, model: ModelView, signature_name: str) -> None:
        target.name = model.name
        target.version.value = model.version
        target.signature_name = signature_name

    def predict(self, request: Any, call: Call) -> Any:
        with self._hold(call, request.model_spec) as model:
            inputs, wanted = messages.predict_inputs(request, model.signature)
            outputs = self.plane.predict(model, inputs, wanted)
            response = self.prediction["Predict"][1]()
            self._fill_spec(response.model_spec, model, model.signature.name)
            for name, array in outputs.items():
                write_tensor(response.outputs[name], array)
            return response

    def classify(self, request: Any, call: Call) -> Any:
        with self._hold(call, request.model_spec) as model:
            inputs = messages.example_inputs(request, model.signature)
            result = self.plane.classify(model, inputs)
            response = self.prediction["Classify"][1]()
            self._fill_spec(response.model_spec, model, model.signature.name)
            for row in result:
                classes = response.result.classifications.add().classes
                for label, score in row:
                    entry = classes.add()
                    entry.label, entry.score = label, score
            return response

    def regress(self, request: Any, call: Call) -> Any:
        with self._hold(call, request.model_spec) as model:
            inputs = messages.example_inputs(request, model.signature)
            values = self.plane.regress(model, inputs)
            response = self.prediction["Regress"][1]()
            self._fill_spec(response.model_spec, model, model.signature.name)
            for value in values:
                response.result.regressions.add().value = value
            return response

    def get_model_metadata(self, request: Any, call: Call) -> Any:
        fields = list(request.metadata_field)
        if not fields:
            raise InvalidArgument("metadata_field is empty: ask for 'signature_def'")
        unknown = [f for f in fields if f != "signature_def"]
        if unknown:
            raise InvalidArgument(
                f"metadata field '{unknown[0]}' is not served; the one field is 'signature_def'"
            )
        with self._hold(call, request.model_spec) as model:
            signature_defs = _SignatureDefMap()
            json_format.ParseDict({"signature_def": model.signature_defs}, signature_defs)
            response = self.prediction["GetModelMetadata"][1]()
            self._fill_spec(response.model_spec, model, "")
            response.metadata["signature_def"].Pack(signature_defs)
            return response

    def get_model_status(self, request: Any, call: Call) -> Any:
        found = self.plane.statuses(call, *self._target(request.model_spec))
        response = self.model["GetModelStatus"][1]()
        for status in found:
            entry = response.model_version_status.add()
            entry.version = status.version
            entry.state = _STATE[status.state]
            entry.status.error_code = _ERROR_CODE.get(status.error_code, _ERROR_CODE["UNKNOWN"])
            entry.status.error_message = status.error_message
        return response


class GrpcServer:
    """The gRPC server of one worker, with a health service that follows readiness."""

    def __init__(self, plane: DataPlane, settings: ServiceSettings) -> None:
        self.settings = settings
        self.plane = plane
        self.handlers = TFServingHandlers(plane)
        self.health = HealthService()
        self._health_models: set[str] = set()
        keys = plane.keys
        self._server = grpc.server(
            _QueueTimedPool(max_workers=settings.grpc_threads, thread_name_prefix="grpc"),
            interceptors=[_HealthAuth(keys)]
            if keys is not None and plane.checks_keys("health")
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
                        "MultiInference": ("multi_inference", None),
                    },
                ),
                self._service(
                    MODEL_SERVICE,
                    h.model,
                    {
                        "GetModelStatus": ("status", h.get_model_status),
                        "HandleReloadConfigRequest": ("reload_config", None),
                    },
                ),
            )
        )
        self._server.add_generic_rpc_handlers((self.health.handler(),))
        plane.add_listener(self._update_health)
        self._update_health()

    def _service(
        self,
        service: str,
        methods: dict[str, tuple[Any, Any]],
        bodies: dict[str, tuple[str, Body | None]],
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
        self, method: str, api: str, body: Body | None
    ) -> Callable[[Any, grpc.ServicerContext], Any]:
        plane = self.plane

        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            metadata = dict(context.invocation_metadata())
            call = plane.begin(PROTOCOL, api, str(metadata.get("x-request-id", "")))
            token = logs.CURRENT_REQUEST_ID.set(call.request_id)
            context.send_initial_metadata((("x-request-id", call.request_id),))
            status, code, message = 200, "OK", ""
            try:
                plane.authenticate(call, metadata)
                if body is None:
                    raise Unimplemented(f"{method} is not implemented by tfship")
                response = body(request, call)
            except ServingError as exc:
                status, code, message = exc.status, exc.grpc_code, exc.message
            except Exception as exc:  # a bug: log it, answer INTERNAL, keep serving
                log.exception("unhandled error in %s", method)
                status, code, message = 500, "INTERNAL", internal_error(exc)
            finally:
                logs.CURRENT_REQUEST_ID.reset(token)
            plane.finish(
                call, status, method="POST", path=method, remote=context.peer(), grpc_code=code
            )
            if status != 200:
                context.abort(grpc.StatusCode[code], message)
            return response

        return handle

    def _update_health(self) -> None:
        """Overall health is this worker's readiness (a channel stays with the worker it
        reached); each model is SERVING while it has a version up."""
        serving, not_serving = SERVING, NOT_SERVING
        ready, report = self.plane.ready(this_worker=True)
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
        log.info("gRPC listening on %s", address.rsplit(":", 1)[0] + f":{port}")
        return port

    def stop(self, grace: float) -> None:
        """Report NOT_SERVING, refuse new calls, let running calls end within ``grace``."""
        self.health.enter_graceful_shutdown()
        self._server.stop(grace).wait(grace + 1)
