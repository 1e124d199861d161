"""JSON request bodies parsed with messages a client can act on (depth, NaN, syntax)."""

from __future__ import annotations

import re
from typing import Any

import orjson

from service.errors import InvalidArgument

_NON_FINITE_TOKEN = re.compile(rb"NaN|Infinity")


def parse_json(raw: bytes | memoryview, what: str = "request body") -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit"):
            message = f"{what}: JSON nested more than 1024 levels deep"
        elif _NON_FINITE_TOKEN.search(bytes(raw)):
            message = (
                f"{what} holds NaN or Infinity, which JSON does not allow; send finite numbers"
            )
        else:
            message = f"{what} is not valid JSON: {exc}"
        raise InvalidArgument(message) from None
