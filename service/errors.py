"""Typed serving errors; each knows its HTTP status. Mapped to responses in one place (app)."""

from __future__ import annotations


class ServingError(Exception):
    status = 500
    # TF Serving's canonical error code name, reported in status endpoints.
    code = "UNKNOWN"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ServingError):
    status = 400
    code = "INVALID_ARGUMENT"


class NotFound(ServingError):
    status = 404
    code = "NOT_FOUND"


class Unavailable(ServingError):
    status = 503
    code = "UNAVAILABLE"
