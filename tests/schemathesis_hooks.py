"""Schemathesis hooks (SCHEMATHESIS_HOOKS=schemathesis_hooks): the two rules of a request
body that JSON Schema cannot state, applied to the bodies it generates as valid.

/openapi.json says them in words (service/protocols/openapi_bodies.py): a V2 input's
``shape`` multiplies out to the number of its ``data`` values, and every input of one
request has the same number of rows. Only positive cases are changed: a negative case must
stay as invalid as schemathesis made it.
"""

from __future__ import annotations

import math
from typing import Any

import schemathesis


def _flat(value: Any) -> list[Any]:
    if not isinstance(value, list):
        return [value]
    return [item for part in value for item in _flat(part)]


def _fit_v2_inputs(inputs: list[Any]) -> None:
    """Every input gets the first one's rows, and as many data values as its shape holds
    (the generated values repeated or cut)."""
    rows = None
    for entry in inputs:
        shape, data = entry.get("shape"), entry.get("data")
        if not (isinstance(shape, list) and shape and isinstance(data, list)):
            continue
        rows = int(shape[0]) if rows is None else rows
        shape[0] = rows
        values = _flat(data)
        wanted = rows * int(math.prod(shape[1:]))
        entry["data"] = [values[i % len(values)] for i in range(wanted)] if values else []


def _fit_columns(inputs: dict[str, Any]) -> None:
    """Named columnar tensors cut to the shortest one's rows."""
    tensors = [value for value in inputs.values() if isinstance(value, list)]
    if len(tensors) < 2:
        return
    rows = min(len(tensor) for tensor in tensors)
    for name, value in inputs.items():
        if isinstance(value, list):
            inputs[name] = value[:rows]


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    if case.meta is None or case.meta.generation.mode.is_negative:
        return case
    body = case.body
    if not isinstance(body, dict):
        return case
    path = case.operation.path
    if path.endswith("/infer") and isinstance(body.get("inputs"), list):
        _fit_v2_inputs(body["inputs"])
    elif path.endswith(":predict") and isinstance(body.get("inputs"), dict):
        _fit_columns(body["inputs"])
    return case
