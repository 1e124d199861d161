"""Typed serving errors; each knows its HTTP status. Mapped to responses in one place (app)."""

from __future__ import annotations


class ServingError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ServingError):
    status = 400


class NotFound(ServingError):
    status = 404


class Unavailable(ServingError):
    status = 503


class ComputeTimeout(ServingError):
    status = 504
