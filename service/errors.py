"""Typed serving errors, all of them here: the one table from error to HTTP status and gRPC
status code. Every front door answers a ServingError from these two attributes (the gRPC
code by name, so this module needs no grpc import)."""

from __future__ import annotations

from typing import ClassVar


class ServingError(Exception):
    status = 500
    grpc_code = "INTERNAL"
    # Response headers this error adds on REST, whichever path answers it.
    headers: ClassVar[dict[str, str]] = {}

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ServingError):
    status = 400
    grpc_code = "INVALID_ARGUMENT"


class Unauthenticated(ServingError):
    status = 401
    grpc_code = "UNAUTHENTICATED"
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": 'Bearer realm="tfship"'}


class PermissionDenied(ServingError):
    status = 403
    grpc_code = "PERMISSION_DENIED"


class NotFound(ServingError):
    status = 404
    grpc_code = "NOT_FOUND"


class PayloadTooLarge(ServingError):
    status = 413
    grpc_code = "RESOURCE_EXHAUSTED"  # what gRPC itself answers for a message over its limit


class UnsupportedMediaType(ServingError):
    status = 415
    grpc_code = "INVALID_ARGUMENT"


class Unimplemented(ServingError):
    status = 501
    grpc_code = "UNIMPLEMENTED"


class Unavailable(ServingError):
    status = 503
    grpc_code = "UNAVAILABLE"


class Overloaded(ServingError):
    """A bounded queue is full: try again later (gRPC: RESOURCE_EXHAUSTED)."""

    status = 503
    grpc_code = "RESOURCE_EXHAUSTED"
    headers: ClassVar[dict[str, str]] = {"Retry-After": "1"}


class ComputeTimeout(ServingError):
    status = 504
    grpc_code = "DEADLINE_EXCEEDED"


def internal_error(error: Exception) -> str:
    """What a client is told of a bug: its type, never its details."""
    return f"internal error: {type(error).__name__}"
