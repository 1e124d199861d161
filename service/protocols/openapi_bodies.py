"""The request bodies one model version takes, as JSON Schemas built from its signature.

``/openapi.json`` lists a model's predict, classify, regress and infer calls with these, so
a body the document allows is one the server answers: every input named, each tensor nested
as its shape says (fixed dimensions exactly, the batch from 1 to TFSHIP_MAX_ROWS), values of
the input's type within its range. JSON Schema cannot relate one value to another, so two
rules are told in words instead (``description``): V2's ``shape`` must multiply out to the
number of ``data`` values, and every input of a request must have the same number of rows.
Forms the server also takes but a schema cannot bound are told in words too: TF Serving's
``{"b64": ...}`` strings and the V2 binary tensor extension.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from service.codecs.v2_tensors import datatype_of
from service.models.model_view import ModelView
from service.models.runtimes.base import Signature, TensorSpec

Schema = dict[str, Any]

SAME_ROWS = "Every input of one request must have the same number of rows."
B64 = 'A string value may also be sent as {"b64": base64 of its UTF-8 text}.'


def value_schema(dtype: np.dtype) -> Schema:
    """One element of a tensor of ``dtype``, as the server checks it (codecs/tensor_checks)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        limit = float(np.finfo(dtype).max)
        return {
            "type": "number",
            "minimum": -limit,
            "maximum": limit,
            "description": f"rounded to the nearest {dtype.name}; integers beyond "
            f"±2^{np.finfo(dtype).nmant + 1} only where {dtype.name} holds them exactly",
        }
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return {"type": "integer", "minimum": int(info.min), "maximum": int(info.max)}
    if dtype.kind == "b":
        return {"type": "boolean"}
    return {"type": "string"}


def tensor_schema(shape: tuple[int, ...], value: Schema, max_rows: int) -> Schema:
    """Nested lists of ``shape``: dimension 0, when it is the batch (-1), takes 1 to
    ``max_rows`` (0: no limit) rows; other -1 dimensions any length."""
    schema = value
    for axis in reversed(range(len(shape))):
        schema = {"type": "array", "items": schema, **_length(shape[axis], axis, max_rows)}
    return schema


def _length(size: int, axis: int, max_rows: int) -> Schema:
    if size >= 0:
        return {"minItems": size, "maxItems": size}
    if axis == 0:
        return {"minItems": 1, **({"maxItems": max_rows} if max_rows else {})}
    return {}


def _names(signature: Signature, api: str) -> list[str | None]:
    """What ``signature_name`` may be for the served signature (absent or null as well)."""
    return ["", signature.name, *sorted(signature.aliases.get(api, ())), None]


def _top_k(view: ModelView) -> Schema | bool:
    if view.task != "classification":
        return False  # refused: top_k needs a classification model
    schema: Schema = {"type": "integer", "minimum": 1}
    if view.class_names:
        schema["maximum"] = len(view.class_names)
    return schema


# --- TF Serving predict ---


def _row_count(signature: Signature, max_rows: int) -> Schema | None:
    """How many instances the row format may have: the batch, or a fixed first dimension
    all inputs share; None when no count fits every input."""
    fixed = {spec.shape[0] for spec in signature.inputs if spec.shape and spec.shape[0] >= 0}
    if any(not spec.shape for spec in signature.inputs) or len(fixed) > 1:
        return None
    return _length(fixed.pop() if fixed else -1, 0, max_rows)


def _instances(signature: Signature, max_rows: int) -> Schema | bool:
    count = _row_count(signature, max_rows)
    if count is None:
        return False  # a scalar input (or two fixed batches) has no row format
    named = {
        "type": "object",
        "required": signature.input_names,
        "additionalProperties": False,
        "properties": {
            spec.name: tensor_schema(spec.shape[1:], value_schema(spec.dtype), max_rows)
            for spec in signature.inputs
        },
    }
    rows: Schema = {"type": "array", **count}
    if len(signature.inputs) > 1:
        return {**rows, "items": named, "description": "one {input name: value} per row"}
    (spec,) = signature.inputs
    bare = tensor_schema(spec.shape[1:], value_schema(spec.dtype), max_rows)
    return {
        "anyOf": [{**rows, "items": bare}, {**rows, "items": named}],
        "description": "rows: each the input's value, or each {input name: value}",
    }


def _columns(signature: Signature, max_rows: int) -> Schema:
    tensors = {
        spec.name: tensor_schema(spec.shape, value_schema(spec.dtype), max_rows)
        for spec in signature.inputs
    }
    named = {
        "type": "object",
        "required": signature.input_names,
        "additionalProperties": False,
        "properties": tensors,
    }
    if len(signature.inputs) > 1:
        return {**named, "description": "{input name: tensor}. " + SAME_ROWS}
    return {
        "anyOf": [next(iter(tensors.values())), named],
        "description": "the input's tensor, or {input name: tensor}",
    }


def _predict_form(view: ModelView, names: list[str | None], max_rows: int) -> Schema:
    signature = view.signature
    form: Schema = {
        "type": "object",
        "properties": {
            "signature_name": {"enum": names},
            "instances": _instances(signature, max_rows),
            "inputs": _columns(signature, max_rows),
            "top_k": _top_k(view),
        },
        "oneOf": [{"required": ["instances"]}, {"required": ["inputs"]}],
    }
    if None not in names:
        form["required"] = ["signature_name"]
    return form


def predict_request(view: ModelView, max_rows: int) -> Schema:
    """TF Serving's predict body: row format ('instances') or columnar ('inputs'); for a
    SavedModel's other signatures, their own inputs under their name."""
    forms = [_predict_form(view, _names(view.signature, "predict"), max_rows)]
    forms += [_predict_form(other, [name], max_rows) for name, other in view.others.items()]
    schema = forms[0] if len(forms) == 1 else {"oneOf": forms}
    return {
        **schema,
        "description": _described(
            view.signature,
            "Row format ('instances') or columnar format ('inputs'), not both. " + SAME_ROWS,
        ),
    }


def _described(signature: Signature, text: str) -> str:
    if any(spec.dtype.kind == "O" for spec in signature.inputs):
        return f"{text} {B64}"
    return text


# --- TF Serving classify and regress ---


def _feature(spec: TensorSpec) -> Schema:
    """A feature filling ``spec``: its row's values, flattened (a lone value bare too)."""
    size = math.prod(spec.shape[1:])
    if spec.dtype.kind == "b":
        # As tf.Example's int64_list carries booleans: any number, nonzero is true.
        value: Schema = {"type": ["boolean", "number"]}
    else:
        value = value_schema(spec.dtype)
    values = {"type": "array", "items": value, "minItems": size, "maxItems": size}
    return {"anyOf": [value, values]} if size == 1 else values


# A feature no input is named after is ignored, if it is a value or a flat list of values.
_ANY_FEATURE = {
    "anyOf": [
        {"type": ["string", "number", "boolean", "null"]},
        {"type": "array", "items": {"type": ["string", "number", "boolean", "null"]}},
    ]
}


def examples_request(view: ModelView, api: str, max_rows: int) -> Schema | None:
    """classify or regress (``api``): examples of features named like the inputs, each
    example one row; None when an input's row shape is not fixed (only predict fills it)."""
    signature = view.signature
    if any(-1 in spec.shape[1:] or not spec.shape for spec in signature.inputs):
        return None
    features = {
        "type": "object",
        "properties": {spec.name: _feature(spec) for spec in signature.inputs},
        "additionalProperties": _ANY_FEATURE,
    }
    examples: Schema = {"type": "array", "items": features, **_length(-1, 0, max_rows)}
    properties: Schema = {
        "signature_name": {"enum": _names(signature, api)},
        "examples": examples,
        "context": {
            **features,
            "type": ["object", "null"],
            "description": "features shared by every example (an example's own value wins)",
        },
    }
    if api == "classify":
        properties["top_k"] = _top_k(view)
    return {
        "type": "object",
        "required": ["examples"],
        "properties": properties,
        # Each input's feature is in every example, or in the context.
        "allOf": [
            {
                "if": {
                    "required": ["context"],
                    "properties": {"context": {"type": "object", "required": [spec.name]}},
                },
                "else": {"properties": {"examples": {"items": {"required": [spec.name]}}}},
            }
            for spec in signature.inputs
        ],
        "description": _described(
            signature,
            "tf.Example-like: one example per row, each input's values flattened under its name.",
        ),
    }


# --- V2 infer ---


def _dimension(size: int, axis: int, max_rows: int) -> Schema:
    if size >= 0:
        return {"const": size}
    if axis == 0:
        return {"type": "integer", "minimum": 1, **({"maximum": max_rows} if max_rows else {})}
    return {"type": "integer", "minimum": 0}


def _v2_input(spec: TensorSpec, max_rows: int) -> Schema:
    value = value_schema(spec.dtype)
    rank = len(spec.shape)
    return {
        "type": "object",
        "required": ["name", "datatype", "shape", "data"],
        "properties": {
            "name": {"const": spec.name},
            "datatype": {"const": datatype_of(spec.dtype)},
            "shape": {
                "type": "array",
                "prefixItems": [_dimension(d, i, max_rows) for i, d in enumerate(spec.shape)],
                "minItems": rank,
                "maxItems": rank,
            },
            "data": {
                "anyOf": [
                    {"type": "array", "items": value, "minItems": 1},
                    tensor_schema(spec.shape, value, max_rows),
                ],
                "description": "row-major values, flat or nested: as many as 'shape' "
                "multiplies out to",
            },
            # Set by the binary tensor extension only (see the operation's description).
            "parameters": {
                "type": ["object", "null"],
                "properties": {"binary_data_size": {"type": "null"}},
            },
        },
    }


def _v2_output(spec: TensorSpec) -> Schema:
    if len(spec.shape) == 2:
        classes: Schema = {"type": "integer", "minimum": 0}
        if spec.shape[1] >= 0:
            classes["maximum"] = spec.shape[1]
    else:
        classes = {"const": 0}  # top-k needs a [batch, classes] output
    return {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"const": spec.name},
            "parameters": {
                "type": ["object", "null"],
                "properties": {
                    "binary_data": {"type": ["boolean", "null"]},
                    "classification": {
                        **classes,
                        "description": "top-k as BYTES 'value:index:label', best first",
                    },
                },
            },
        },
    }


def _once_each(names: list[str], at_least: int) -> list[Schema]:
    return [
        {
            "contains": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"const": name}},
            },
            "minContains": at_least,
            "maxContains": 1,
        }
        for name in names
    ]


def infer_request(view: ModelView, max_rows: int) -> Schema:
    """The V2 infer body in JSON: every input once, outputs (optional) each at most once."""
    signature = view.signature
    return {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": ["string", "null"]},
            "parameters": {
                "type": ["object", "null"],
                "properties": {"binary_data_output": {"type": ["boolean", "null"]}},
            },
            "inputs": {
                "type": "array",
                "minItems": len(signature.inputs),
                "maxItems": len(signature.inputs),
                "items": {"oneOf": [_v2_input(spec, max_rows) for spec in signature.inputs]},
                "allOf": _once_each(signature.input_names, 1),
            },
            "outputs": {
                "type": ["array", "null"],
                "items": {"oneOf": [_v2_output(spec) for spec in signature.outputs]},
                "allOf": _once_each(signature.output_names, 0),
            },
        },
        "description": "Each input's 'shape' must multiply out to the number of its 'data' "
        "values. " + SAME_ROWS,
    }
