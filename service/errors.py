"""Typed serving errors, all of them here; each knows its HTTP status. Mapped to responses
in one place per protocol: app.py (REST) and grpc_server.py (gRPC codes)."""

from __future__ import annotations

from typing import ClassVar


class ServingError(Exception):
    status = 500
    # Response headers this error adds on REST, whichever path answers it.
    headers: ClassVar[dict[str, str]] = {}

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ServingError):
    status = 400


class Unauthenticated(ServingError):
    status = 401
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": 'Bearer realm="tfship"'}


class PermissionDenied(ServingError):
    status = 403


class NotFound(ServingError):
    status = 404


class PayloadTooLarge(ServingError):
    status = 413


class UnsupportedMediaType(ServingError):
    status = 415


class Unimplemented(ServingError):
    status = 501


class Unavailable(ServingError):
    status = 503


class Overloaded(ServingError):
    """A bounded queue is full: try again later (gRPC: RESOURCE_EXHAUSTED)."""

    status = 503
    headers: ClassVar[dict[str, str]] = {"Retry-After": "1"}


class ComputeTimeout(ServingError):
    status = 504


def internal_error(error: Exception) -> str:
    """What a client is told of a bug: its type, never its details."""
    return f"internal error: {type(error).__name__}"
