"""Helpers every protocol blueprint uses: JSON responses and model lookup for a request."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response, current_app, g

from service.registry import Registry, ServedVersion


def json_response(body: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        status=status,
        mimetype="application/json",
    )


def registry() -> Registry:
    return current_app.extensions["tfship.registry"]


def lookup(protocol: str, api: str, name: str, version: int | None) -> ServedVersion:
    """The served version a request names, labelling the request for the metrics hook.

    The model label is set only once the name is known to the registry, so requests for
    made-up names cannot create metric label values.
    """
    g.protocol, g.api = protocol, api
    served = registry().find(name, version)
    g.model, g.version = served.name, str(served.version)
    return served
