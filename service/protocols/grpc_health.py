"""The standard gRPC health service (``grpc.health.v1.Health``), without its generated code.

grpcio-health-checking's ``health_pb2`` refuses to import under an older protobuf runtime
than the one it was generated with (``VersionError``), and installing another client beside
tfship (``pip install "tritonclient[grpc]"``) can leave exactly that: the import would kill
every worker at boot. So the messages are declared with TF Serving's
(service/codecs/tfserving_proto_files.py), and Check, Watch and List are served here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import grpc

from service.codecs.grpc_protos import enum_values, service_methods

SERVICE = "grpc.health.v1.Health"
_STATUS = enum_values("grpc.health.v1.HealthCheckResponse.ServingStatus")
SERVING = _STATUS["SERVING"]
NOT_SERVING = _STATUS["NOT_SERVING"]
_SERVICE_UNKNOWN = _STATUS["SERVICE_UNKNOWN"]
_METHODS = service_methods(SERVICE)
_CheckResponse = _METHODS["Check"][1]
# How often a Watch stream checks that its client is still there.
_WATCH_POLL_SECONDS = 1.0


class HealthService:
    def __init__(self) -> None:
        self._statuses: dict[str, int] = {}
        self._changed = threading.Condition()
        self._shutting_down = False

    def set(self, service: str, status: int) -> None:
        with self._changed:
            if self._shutting_down:
                return
            self._statuses[service] = status
            self._changed.notify_all()

    def enter_graceful_shutdown(self) -> None:
        """Every service NOT_SERVING from now on, and no later set() changes that."""
        with self._changed:
            self._shutting_down = True
            for service in self._statuses:
                self._statuses[service] = NOT_SERVING
            self._changed.notify_all()

    def check(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self._changed:
            status = self._statuses.get(request.service)
        if status is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service '{request.service}'")
        return _CheckResponse(status=status)

    def watch(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        """The status now, then each change, until the client goes (the protocol's Watch:
        an unknown service is SERVICE_UNKNOWN, not an error)."""
        last = None
        while context.is_active():
            with self._changed:
                status = self._statuses.get(request.service, _SERVICE_UNKNOWN)
                if status == last:
                    self._changed.wait(_WATCH_POLL_SECONDS)
                    continue
            last = status
            yield _CheckResponse(status=status)

    def list(self, request: Any, context: grpc.ServicerContext) -> Any:
        response_type = _METHODS["List"][1]
        response = response_type()
        with self._changed:
            for service, status in self._statuses.items():
                response.statuses[service].status = status
        return response

    def handler(self) -> grpc.GenericRpcHandler:
        def unary(method: str, body: Any) -> grpc.RpcMethodHandler:
            request_type, response_type = _METHODS[method]
            return grpc.unary_unary_rpc_method_handler(
                body,
                request_deserializer=request_type.FromString,
                response_serializer=response_type.SerializeToString,
            )

        request_type, response_type = _METHODS["Watch"]
        handlers = {
            "Check": unary("Check", self.check),
            "Watch": grpc.unary_stream_rpc_method_handler(
                self.watch,
                request_deserializer=request_type.FromString,
                response_serializer=response_type.SerializeToString,
            ),
            "List": unary("List", self.list),
        }
        return grpc.method_handlers_generic_handler(SERVICE, handlers)
