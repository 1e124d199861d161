"""JSON request bodies parsed with messages a client can act on (depth, NaN, syntax)."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from service.errors import InvalidArgument

_NON_FINITE_TOKEN = re.compile(rb"NaN|Infinity")


def parse_json(
    raw: bytes | memoryview, what: str = "request body", allow_non_finite: bool = False
) -> Any:
    """The parsed body. ``allow_non_finite`` (TFSHIP_NON_FINITE=allow) also takes the
    ``NaN``, ``Infinity`` and ``-Infinity`` tokens, which TF Serving's REST API accepts
    although JSON has no such numbers."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit"):
            message = f"{what}: JSON nested more than 1024 levels deep"
        elif _NON_FINITE_TOKEN.search(bytes(raw)):
            if allow_non_finite:
                return _parse_with_non_finite(raw, what)
            message = (
                f"{what} holds NaN or Infinity, which JSON does not allow; send finite "
                "numbers (or start the server with --non-finite allow)"
            )
        else:
            message = f"{what} is not valid JSON: {exc}"
        raise InvalidArgument(message) from None


def _parse_with_non_finite(raw: bytes | memoryview, what: str) -> Any:
    # orjson has no switch for these tokens; the standard library reads them by default.
    # Only bodies holding them take this slower path.
    try:
        return json.loads(bytes(raw))
    except RecursionError:
        raise InvalidArgument(f"{what}: JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and UnicodeDecodeError for bad UTF-8
        raise InvalidArgument(f"{what} is not valid JSON: {exc}") from None


def whole_number(value: Any) -> int | None:
    """``value`` as an int if it is a JSON integer, else None. JSON has one number type,
    so ``9`` and ``9.0`` are the same integer (as JSON Schema reads them too); booleans
    are not numbers."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None
