"""TF Serving's REST predict format <-> ``dict[str, numpy.ndarray]``, validated.

Row format:      {"instances": [row, row, ...]}   -> {"predictions": [...]}
Columnar format: {"inputs": tensor | {name: tensor}} -> {"outputs": tensor | {name: tensor}}

Every rejection names the input, what the signature expects and what came.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from service.codecs.example_features import check_signature_name
from service.codecs.json_floats import json_floats
from service.codecs.json_tensors import Path
from service.codecs.tensor_checks import as_array, cast_checked, check_shape
from service.errors import InvalidArgument
from service.models.runtimes.base import Signature, TensorSpec

# Where a predict body holds tensors: rows, or the columnar tensor bare or by input name.
PREDICT_TENSORS: frozenset[Path] = frozenset({("instances",), ("inputs",), ("inputs", "*")})


def to_array(value: Any, spec: TensorSpec, where: str, may_hold_bool: bool) -> np.ndarray:
    """One JSON value (batch included) -> an array of the signature's dtype and shape."""
    label = f"input '{spec.name}'{where}"
    array = as_array(value, spec, label)
    check_shape(array.shape, spec, label)
    return cast_checked(array, value, spec.dtype, label, may_hold_bool)


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
    check_signature_name(body.get("signature_name"), signature, "predict")
    if "instances" in body:
        return _decode_rows(body["instances"], signature, may_hold_bool), True
    if "inputs" in body:
        return _decode_columns(body["inputs"], signature, may_hold_bool), False
    raise InvalidArgument(
        "missing 'instances' (row format) or 'inputs' (columnar format) in the request body"
    )


def check_input_names(given: set[str], signature: Signature, where: str) -> None:
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
    if isinstance(instances, np.ndarray):  # rows of numbers, read as one array
        spec = _only_input(signature)
        return {spec.name: to_array(instances, spec, " in 'instances'", may_hold_bool)}
    if not isinstance(instances, list):
        raise InvalidArgument(f"'instances' must be a list of rows, got {type(instances).__name__}")
    if not instances:
        raise InvalidArgument("'instances' is empty; send at least one row")
    named = isinstance(instances[0], dict)
    if not named:
        spec = _only_input(signature)
        if any(isinstance(row, dict) for row in instances):
            raise InvalidArgument("'instances' mixes objects and plain values")
        return {spec.name: to_array(instances, spec, " in 'instances'", may_hold_bool)}
    for index, row in enumerate(instances):
        if not isinstance(row, dict):
            raise InvalidArgument(f"instance {index} is not an object like instance 0")
        check_input_names(set(row), signature, f"instance {index}")
    return {
        spec.name: to_array(
            [row[spec.name] for row in instances], spec, " in 'instances'", may_hold_bool
        )
        for spec in signature.inputs
    }


def _only_input(signature: Signature) -> TensorSpec:
    """The input that plain (unnamed) rows are for."""
    if len(signature.inputs) != 1:
        raise InvalidArgument(
            "this model has several inputs: each instance must be an object "
            "{input name: value}; inputs are " + ", ".join(f"'{n}'" for n in signature.input_names)
        )
    return signature.inputs[0]


def _decode_columns(inputs: Any, signature: Signature, may_hold_bool: bool) -> dict[str, Any]:
    names = set(signature.input_names)
    # A single-input model may get its tensor bare; an object whose keys are not input
    # names is then taken as an attempt at named inputs and checked as such.
    if isinstance(inputs, dict):
        check_input_names(set(inputs), signature, "'inputs'")
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


def _json_ready(array: np.ndarray) -> Any:
    """An output as orjson serializes it: numeric arrays as they are (no Python loop);
    string outputs (object arrays, which orjson's numpy support refuses) as nested lists;
    float16 at float16's digits (codecs/json_floats.py)."""
    if array.dtype == object:
        return array.tolist()
    return json_floats(np.ascontiguousarray(array))


def encode_predict(outputs: dict[str, np.ndarray], row_format: bool) -> dict[str, Any]:
    """The response body, as TF Serving shapes it (arrays are serialized by orjson)."""
    if row_format:
        if len(outputs) == 1:
            (array,) = outputs.values()
            return {"predictions": _json_ready(array)}
        batch = len(next(iter(outputs.values())))
        arrays = {k: np.asarray(v) for k, v in outputs.items()}
        return {
            "predictions": [{k: _json_ready(v[i]) for k, v in arrays.items()} for i in range(batch)]
        }
    if len(outputs) == 1:
        (array,) = outputs.values()
        return {"outputs": _json_ready(array)}
    return {"outputs": {k: _json_ready(v) for k, v in outputs.items()}}
