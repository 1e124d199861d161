"""JSON response bodies, for the Flask views and the fast path alike."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response


def encode_json(body: Any) -> bytes:
    """A JSON response body; numpy arrays and scalars are written by orjson directly."""
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def json_response(body: Any, status: int = 200) -> Response:
    return Response(encode_json(body), status=status, mimetype="application/json")
