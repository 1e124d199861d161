"""TF Serving's REST predict format <-> ``dict[str, numpy.ndarray]``, validated.

Row format:      {"instances": [row, row, ...]}   -> {"predictions": [...]}
Columnar format: {"inputs": tensor | {name: tensor}} -> {"outputs": tensor | {name: tensor}}

Every rejection names the input, what the signature expects and what came.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from service.errors import InvalidArgument
from service.runtimes.base import Signature, TensorSpec

_KIND_WORDS = {"U": "strings", "S": "strings", "b": "booleans (true/false)", "O": "null or mixed"}


def _shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _leading_depth(value: Any) -> int:
    depth = 0
    while isinstance(value, list) and value:
        depth += 1
        value = value[0]
    return depth


def _has_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, list):
        return any(_has_bool(v) for v in value)
    return False


def to_array(value: Any, spec: TensorSpec, where: str, may_hold_bool: bool) -> np.ndarray:
    """One JSON value -> an array of the signature's dtype and shape, or InvalidArgument.

    ``may_hold_bool`` is False when the raw body has no ``true``/``false`` token: then the
    (slow) walk for booleans hidden among numbers is skipped.
    """
    label = f"input '{spec.name}'{where}"
    try:
        array = np.asarray(value)
    except ValueError:
        depth = _leading_depth(value)
        if depth > len(spec.shape):
            # numpy refuses more than 64 dimensions; say what is wrong, not "ragged".
            raise InvalidArgument(
                f"{label}: expected shape {spec.shape_text()} (rank {len(spec.shape)}), "
                f"got lists nested {depth} deep"
            ) from None
        raise InvalidArgument(
            f"{label}: ragged nested lists (rows of different lengths); expected a "
            f"rectangular tensor of shape {spec.shape_text()}"
        ) from None
    kind = array.dtype.kind
    if kind in _KIND_WORDS and not (kind == "b" and spec.dtype.kind == "b"):
        raise InvalidArgument(
            f"{label}: expected numbers of type {spec.dtype.name}, got {_KIND_WORDS[kind]}"
        )
    if array.ndim != len(spec.shape):
        raise InvalidArgument(
            f"{label}: expected shape {spec.shape_text()} (rank {len(spec.shape)}), "
            f"got shape {_shape_text(array.shape)} (rank {array.ndim})"
        )
    for axis, (want, got) in enumerate(zip(spec.shape, array.shape, strict=True)):
        if want != -1 and want != got:
            raise InvalidArgument(
                f"{label}: dimension {axis} must be {want}, got {got} "
                f"(expected shape {spec.shape_text()}, got {_shape_text(array.shape)})"
            )
    if array.shape[0] == 0:
        raise InvalidArgument(f"{label}: empty batch; send at least one row")
    if may_hold_bool and spec.dtype.kind != "b" and _has_bool(value):
        raise InvalidArgument(
            f"{label}: expected numbers of type {spec.dtype.name}, got a boolean (true/false)"
        )
    if spec.dtype.kind in "iu" and kind == "f" and not np.all(np.mod(array, 1) == 0):
        raise InvalidArgument(
            f"{label}: expected integers ({spec.dtype.name}), got fractional numbers"
        )
    if kind == "f" and not np.isfinite(array).all():
        raise InvalidArgument(f"{label}: NaN and Infinity are not accepted")
    return array.astype(spec.dtype, copy=False)


def decode_predict(
    body: Any, signature: Signature, may_hold_bool: bool = True
) -> tuple[dict[str, np.ndarray], bool]:
    """Parse a predict request body; returns (inputs, row_format)."""
    if not isinstance(body, dict):
        raise InvalidArgument(
            "request body must be a JSON object with 'instances' (row format) or "
            "'inputs' (columnar format)"
        )
    if "instances" in body and "inputs" in body:
        raise InvalidArgument(
            "request has both 'instances' and 'inputs'; use one: 'instances' (row format) or "
            "'inputs' (columnar format)"
        )
    requested = body.get("signature_name")
    if requested not in (None, "", signature.name):
        raise InvalidArgument(
            f"signature '{requested}' not found; this model serves '{signature.name}'"
        )
    if "instances" in body:
        return _decode_rows(body["instances"], signature, may_hold_bool), True
    if "inputs" in body:
        return _decode_columns(body["inputs"], signature, may_hold_bool), False
    raise InvalidArgument(
        "missing 'instances' (row format) or 'inputs' (columnar format) in the request body"
    )


def _check_names(given: set[str], signature: Signature, where: str) -> None:
    expected = set(signature.input_names)
    if given == expected:
        return
    parts = []
    if expected - given:
        parts.append("missing " + ", ".join(f"'{n}'" for n in sorted(expected - given)))
    if given - expected:
        parts.append("unknown " + ", ".join(f"'{n}'" for n in sorted(given - expected)))
    raise InvalidArgument(
        f"{where}: {'; '.join(parts)} input; the model's inputs are "
        + ", ".join(f"'{n}'" for n in signature.input_names)
    )


def _decode_rows(instances: Any, signature: Signature, may_hold_bool: bool) -> dict[str, Any]:
    if not isinstance(instances, list):
        raise InvalidArgument(f"'instances' must be a list of rows, got {type(instances).__name__}")
    if not instances:
        raise InvalidArgument("'instances' is empty; send at least one row")
    named = isinstance(instances[0], dict)
    if not named:
        if len(signature.inputs) != 1:
            raise InvalidArgument(
                "this model has several inputs: each instance must be an object "
                "{input name: value}; inputs are "
                + ", ".join(f"'{n}'" for n in signature.input_names)
            )
        spec = signature.inputs[0]
        if any(isinstance(row, dict) for row in instances):
            raise InvalidArgument("'instances' mixes objects and plain values")
        return {spec.name: to_array(instances, spec, " in 'instances'", may_hold_bool)}
    for index, row in enumerate(instances):
        if not isinstance(row, dict):
            raise InvalidArgument(f"instance {index} is not an object like instance 0")
        _check_names(set(row), signature, f"instance {index}")
    return {
        spec.name: to_array(
            [row[spec.name] for row in instances], spec, " in 'instances'", may_hold_bool
        )
        for spec in signature.inputs
    }


def _decode_columns(inputs: Any, signature: Signature, may_hold_bool: bool) -> dict[str, Any]:
    names = set(signature.input_names)
    # A single-input model may get its tensor bare; an object whose keys are not input
    # names is then taken as an attempt at named inputs and checked as such.
    if isinstance(inputs, dict):
        _check_names(set(inputs), signature, "'inputs'")
        return {
            spec.name: to_array(inputs[spec.name], spec, " in 'inputs'", may_hold_bool)
            for spec in signature.inputs
        }
    if len(names) != 1:
        raise InvalidArgument(
            "this model has several inputs: 'inputs' must be an object {input name: tensor}"
        )
    spec = signature.inputs[0]
    return {spec.name: to_array(inputs, spec, " in 'inputs'", may_hold_bool)}


def encode_predict(outputs: dict[str, np.ndarray], row_format: bool) -> dict[str, Any]:
    """The response body, as TF Serving shapes it (arrays are serialized by orjson)."""
    if row_format:
        if len(outputs) == 1:
            (array,) = outputs.values()
            return {"predictions": np.ascontiguousarray(array)}
        batch = len(next(iter(outputs.values())))
        arrays = {k: np.ascontiguousarray(v) for k, v in outputs.items()}
        return {"predictions": [{k: v[i] for k, v in arrays.items()} for i in range(batch)]}
    if len(outputs) == 1:
        (array,) = outputs.values()
        return {"outputs": np.ascontiguousarray(array)}
    return {"outputs": {k: np.ascontiguousarray(v) for k, v in outputs.items()}}
