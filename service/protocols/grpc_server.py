"""The gRPC server of one worker: TF Serving's services, the Open Inference Protocol's
(V2) and the standard health service, on one port.

The server runs inside every gunicorn worker (started by ``post_worker_init`` in
gunicorn.conf.py) and uses that worker's dataplane, so a model is loaded once per worker
whichever protocol calls it. Every worker binds the same port with ``SO_REUSEPORT``; the
kernel spreads new connections over the workers, and a worker that dies takes only its own
connections with it (clients reconnect to the others).

Every RPC goes through one wrapper (``_wrap``): the call record, API keys, the body, the
error's gRPC code, metrics and the access line, so all RPCs of both services behave alike.
Metrics and access lines record the HTTP status matching the gRPC code, so one ``status``
label means the same for every protocol.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from service import logs
from service.auth import ApiKeys, metadata_credentials
from service.codecs import v2_grpc_protos
from service.codecs.grpc_protos import service_methods
from service.dataplane.call import Call
from service.dataplane.plane import DataPlane
from service.errors import ServingError, Unauthenticated, Unimplemented, internal_error
from service.metrics import observe_queue
from service.protocols import tfserving_grpc, v2_grpc
from service.protocols.grpc_health import NOT_SERVING, SERVING, HealthService
from service.settings import ServiceSettings

log = logging.getLogger("tfship.grpc")
# The queue-time label: the wait for a thread of the pool both services share.
POOL_PROTOCOL = "grpc"
# An RPC body: the request message and the call record in, the response message out.
Body = Callable[[Any, Call], Any]


class _QueueTimedPool(ThreadPoolExecutor):
    """gRPC hands each call to this pool; the wait for a free thread is the queue time."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        queued = time.perf_counter()

        def timed() -> Any:
            observe_queue(POOL_PROTOCOL, time.perf_counter() - queued)
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
            self.keys.authenticate(metadata_credentials(details.invocation_metadata))
        except Unauthenticated as exc:
            message = exc.message

            def refuse(request: Any, context: grpc.ServicerContext) -> Any:
                context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

            if details.method.endswith("/Watch"):
                return grpc.unary_stream_rpc_method_handler(refuse)
            return grpc.unary_unary_rpc_method_handler(refuse)
        return continuation(details)


class GrpcServer:
    """The gRPC server of one worker, with a health service that follows readiness."""

    def __init__(self, plane: DataPlane, settings: ServiceSettings) -> None:
        self.settings = settings
        self.plane = plane
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
        tfserving = tfserving_grpc.TFServingHandlers(plane)
        handlers = [
            self._service(tfserving_grpc.PROTOCOL, service, service_methods(service), bodies)
            for service, bodies in tfserving.tables().items()
        ]
        handlers.append(
            self._service(
                v2_grpc.PROTOCOL,
                v2_grpc.SERVICE,
                v2_grpc_protos.service_methods(),
                v2_grpc.V2Handlers(plane).table(),
                health=v2_grpc.HEALTH_METHODS,
            )
        )
        self._server.add_generic_rpc_handlers(tuple(handlers))
        self._server.add_generic_rpc_handlers((self.health.handler(),))
        plane.add_listener(self._update_health)
        self._update_health()

    def _service(
        self,
        protocol: str,
        service: str,
        methods: dict[str, tuple[Any, Any]],
        bodies: dict[str, tuple[str | None, Body | None]],
        health: frozenset[str] = frozenset(),
    ) -> grpc.GenericRpcHandler:
        """``health``: methods that TFSHIP_AUTH_EXEMPT's "health" leaves open, as REST's."""
        handlers = {}
        for method, (request_type, response_type) in methods.items():
            api, body = bodies[method]
            part = "health" if method in health else "api"
            handlers[method] = grpc.unary_unary_rpc_method_handler(
                self._wrap(protocol, f"/{service}/{method}", api, body, part),
                request_deserializer=request_type.FromString,
                response_serializer=response_type.SerializeToString,
            )
        return grpc.method_handlers_generic_handler(service, handlers)

    def _wrap(
        self, protocol: str, method: str, api: str | None, body: Body | None, part: str = "api"
    ) -> Callable[[Any, grpc.ServicerContext], Any]:
        plane = self.plane

        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            metadata = metadata_credentials(context.invocation_metadata())
            call = plane.begin(protocol, api, str(metadata.get("x-request-id", "")))
            token = logs.CURRENT_REQUEST_ID.set(call.request_id)
            context.send_initial_metadata((("x-request-id", call.request_id),))
            status, code, message = 200, "OK", ""
            try:
                plane.authenticate(call, metadata, part=part)
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
        for service in (tfserving_grpc.PREDICTION_SERVICE, tfserving_grpc.MODEL_SERVICE):
            self.health.set(service, overall)
        self.health.set(v2_grpc.SERVICE, overall)
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
