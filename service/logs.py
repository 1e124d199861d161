"""Structured logs: one JSON object per line, with the request id inside a request.

Every API request gets an id: the client's ``X-Request-ID`` when it is a sane token, else
a new one; it is echoed in the response header and carried by every log line written
while the request runs, so one grep finds everything about one request.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import os
import re
import sys
import time
import uuid
from typing import Any

import orjson
from flask import g, has_request_context

REQUEST_ID_HEADER = "X-Request-ID"
# Client ids end up in logs: keep them short and free of anything a log parser could trip on.
_SANE_ID = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")

access_log = logging.getLogger("tfship.access")
# The request id where there is no Flask request context (the fast path).
CURRENT_REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "tfship_request_id", default=None
)


def _entry(
    created: float, level: str, logger: str, pid: int | None, message: str, request_id: str | None
) -> dict[str, Any]:
    """The fields every JSON line starts with, in order."""
    entry: dict[str, Any] = {
        "ts": dt.datetime.fromtimestamp(created, dt.UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "logger": logger,
        "pid": pid,
        "message": message,
    }
    if request_id is not None:
        entry["request_id"] = request_id
    return entry


def current_request_id() -> str | None:
    if has_request_context() and "request_id" in g:
        return g.request_id
    return CURRENT_REQUEST_ID.get()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = _entry(
            record.created,
            record.levelname.lower(),
            record.name,
            record.process,
            record.getMessage(),
            current_request_id(),
        )
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


# The handler access lines go to when they can skip the logging machinery (see log_access).
_json_handler: logging.StreamHandler | None = None  # type: ignore[type-arg]


def configure(log_format: str) -> None:
    """Send the ``tfship`` loggers to stderr, as JSON lines or as plain text."""
    global _json_handler
    logger = logging.getLogger("tfship")
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
        _json_handler = handler
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s")
        )
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def request_id_from(given: str) -> str:
    """The client's id when it is a sane token, else a new one."""
    return given if _SANE_ID.match(given) else uuid.uuid4().hex


def write_access(
    request_id: str | None,
    *,
    method: str,
    path: str,
    status: int,
    grpc_code: str | None = None,
    seconds: float,
    protocol: str | None,
    api: str | None,
    model: str | None,
    version: str | None,
    remote: str | None,
    client: str | None = None,
) -> None:
    """One access line, for every protocol (gRPC calls add their status code), through the
    logging machinery only where it must be."""
    fields: dict[str, Any] = {
        "method": method,
        "path": path,
        "status": status,
        **({"grpc_code": grpc_code} if grpc_code is not None else {}),
        "latency_ms": round(seconds * 1000, 3),
        "protocol": protocol,
        "api": api,
        "model": model,
        "version": version,
        "remote": remote,
        **({"client": client} if client is not None else {}),
    }
    handler = _json_handler
    if handler is None or access_log.handlers or not access_log.isEnabledFor(logging.INFO):
        token = CURRENT_REQUEST_ID.set(request_id)
        try:
            access_log.info("request", extra={"fields": fields})
        finally:
            CURRENT_REQUEST_ID.reset(token)
        return
    # The line JsonFormatter would write, without a LogRecord (whose creation looks up the
    # caller's frame): a third of the access log's cost on the hot path.
    entry = _entry(time.time(), "info", access_log.name, os.getpid(), "request", request_id)
    entry.update(fields)
    line = orjson.dumps(entry, default=str).decode() + "\n"
    with handler.lock:  # type: ignore[union-attr]
        handler.stream.write(line)
        handler.stream.flush()
