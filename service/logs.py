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
import uuid
from typing import Any

import orjson
from flask import g, has_request_context, request

REQUEST_ID_HEADER = "X-Request-ID"
# Client ids end up in logs: keep them short and free of anything a log parser could trip on.
_SANE_ID = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")

access_log = logging.getLogger("tfship.access")
# The request id where there is no Flask request context (the fast path).
CURRENT_REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "tfship_request_id", default=None
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if has_request_context() and "request_id" in g:
            entry["request_id"] = g.request_id
        elif (request_id := CURRENT_REQUEST_ID.get()) is not None:
            entry["request_id"] = request_id
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


def assign_request_id() -> str:
    g.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER, ""))
    return g.request_id


def log_rpc(fields: dict[str, Any]) -> None:
    """The access line of a gRPC call (no Flask request there: the caller gives every field)."""
    access_log.info("request", extra={"fields": fields})


def log_access(status: int, seconds: float) -> None:
    """The access line of a request Flask answered."""
    state = g._get_current_object()
    req = request._get_current_object()  # type: ignore[attr-defined]
    write_access(
        state.get("request_id"),
        {
            "method": req.method,
            "path": req.path,
            "status": status,
            "latency_ms": round(seconds * 1000, 3),
            "protocol": state.get("protocol"),
            "api": state.get("api"),
            "model": state.get("model"),
            "version": state.get("version"),
            "remote": req.remote_addr,
            **({"client": state.client} if "client" in state else {}),
        },
    )


def write_access(request_id: str | None, fields: dict[str, Any]) -> None:
    """One access line: through the logging machinery only where it must be."""
    handler = _json_handler
    if handler is None or access_log.handlers or not access_log.isEnabledFor(logging.INFO):
        token = CURRENT_REQUEST_ID.set(request_id)
        try:
            access_log.info("request", extra={"fields": fields})
        finally:
            CURRENT_REQUEST_ID.reset(token)
        return
    # The same line JsonFormatter writes, without a LogRecord (whose creation looks up the
    # caller's frame): a third of the access log's cost on the hot path.
    entry = {
        "ts": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "level": "info",
        "logger": access_log.name,
        "pid": os.getpid(),
        "message": "request",
        **({"request_id": request_id} if request_id is not None else {}),
        **fields,
    }
    line = orjson.dumps(entry, default=str).decode() + "\n"
    with handler.lock:  # type: ignore[union-attr]
        handler.stream.write(line)
        handler.stream.flush()
