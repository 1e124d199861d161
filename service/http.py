"""Helpers every protocol blueprint uses: JSON responses and model lookup for a request."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from flask import Response, current_app, g

from service.registry import Registry, ServedVersion


def encode_json(body: Any) -> bytes:
    """A JSON response body; numpy arrays and scalars are written by orjson directly."""
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def json_response(body: Any, status: int = 200) -> Response:
    return Response(encode_json(body), status=status, mimetype="application/json")


def registry() -> Registry:
    return current_app.extensions["tfship.registry"]


def _label_request(protocol: str, api: str, name: str) -> Registry:
    # The model label is set only for names the registry knows, so requests for made-up
    # names cannot create metric label values. Known now: label it even if the lookup then
    # fails (a 503 for a model that is loading still counts under its model). Not known yet
    # (a worker still in its first poll): the lookup waits, and labels it once found.
    g.protocol, g.api = protocol, api
    models = registry()
    if models.has_model(name):
        g.model = name
    return models


@contextmanager
def serving(
    protocol: str, api: str, name: str, version: int | None = None, label: str | None = None
) -> Iterator[ServedVersion]:
    """The AVAILABLE version a request names, held until the response is built."""
    with _label_request(protocol, api, name).serving(name, version, label) as served:
        g.model, g.version = served.name, str(served.version)
        yield served


def statuses(
    protocol: str, api: str, name: str, version: int | None = None, label: str | None = None
) -> list[ServedVersion]:
    found = _label_request(protocol, api, name).statuses(name, version, label)
    g.model = name
    if len(found) == 1:
        g.version = str(found[0].version)
    return found
