"""Classify and Regress: TF Serving's example-based APIs, on top of the predict signature.

TF Serving runs these only for SavedModels exported with a classify or regress signature
that parses serialized ``tf.Example`` protos in the graph. tfship models carry their task and
class names in ``metadata.json`` instead, so both runtimes (ONNX included) answer them: each
example's features are mapped to the inputs of the same name (flattened values, one row
each), the predict signature runs once for the whole batch, and its first output becomes
(class name, score) pairs for a classification model or one value per example for a
regression model.

Examples arrive here protocol-neutral: ``{feature name: flat list of values}``, built by the
REST layer from JSON and by the gRPC layer from ``tf.Example`` protos.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from service.errors import InvalidArgument
from service.runtimes.base import Signature
from service.tensor_checks import check_numbers, shape_text

Example = Mapping[str, Sequence[Any]]


def check_signature_name(requested: str | None, signature: Signature) -> None:
    if requested not in (None, "", signature.name):
        raise InvalidArgument(
            f"signature '{requested}' not found; this model serves '{signature.name}'"
        )


def merge_context(examples: Sequence[Example], context: Example | None) -> list[Example]:
    """Context features are shared by every example; an example's own value wins."""
    if not context:
        return list(examples)
    return [{**context, **example} for example in examples]


def examples_to_inputs(examples: Sequence[Example], signature: Signature) -> dict[str, np.ndarray]:
    """One row per example for every input, from the feature named like the input.

    Features the model does not use are ignored, as TF Serving's example parsing does.
    """
    if not examples:
        raise InvalidArgument("'examples' is empty; send at least one example")
    inputs = {}
    for spec in signature.inputs:
        row_shape = spec.shape[1:]
        if any(d == -1 for d in row_shape):
            raise InvalidArgument(
                f"input '{spec.name}' has shape {shape_text(spec.shape)}; examples can only "
                "fill inputs whose row shape is fixed: use predict"
            )
        size = int(np.prod(row_shape, dtype=np.int64))
        rows = []
        for index, example in enumerate(examples):
            if spec.name not in example:
                raise InvalidArgument(
                    f"example {index} has no feature '{spec.name}'; the model's inputs are "
                    + ", ".join(f"'{n}'" for n in signature.input_names)
                )
            values = example[spec.name]
            if len(values) != size:
                raise InvalidArgument(
                    f"example {index}, feature '{spec.name}': {len(values)} values; the input "
                    f"takes {size} per example (shape {shape_text(spec.shape)})"
                )
            rows.append(values)
        label = f"feature '{spec.name}'"
        if spec.dtype.kind == "O":
            inputs[spec.name] = _string_rows(rows, label).reshape((len(examples), *row_shape))
            continue
        array = np.asarray(rows)
        if array.dtype.kind not in "iufb":
            raise InvalidArgument(f"{label}: expected numbers, got strings or bytes")
        if array.dtype.kind == "b" and spec.dtype.kind != "b":
            raise InvalidArgument(f"{label}: expected numbers, got booleans")
        inputs[spec.name] = check_numbers(array, spec.dtype, label).reshape(
            (len(examples), *row_shape)
        )
    return inputs


def _string_rows(rows: list[Any], label: str) -> np.ndarray:
    """bytes_list values (bytes over gRPC, str over REST) for a string input."""
    flat = []
    for row in rows:
        for value in row:
            if isinstance(value, bytes):
                try:
                    value = value.decode("utf-8")
                except UnicodeDecodeError:
                    raise InvalidArgument(f"{label}: strings must be UTF-8 text") from None
            if not isinstance(value, str):
                raise InvalidArgument(f"{label}: expected strings, got {type(value).__name__}")
            flat.append(value)
    array = np.empty(len(flat), dtype=object)
    array[:] = flat
    return array


def _task(metadata: Mapping[str, Any]) -> str:
    return str(metadata.get("task", "unknown"))


def classifications(
    name: str, metadata: Mapping[str, Any], signature: Signature, outputs: Mapping[str, Any]
) -> list[list[tuple[str, float]]]:
    """Per example: (class name, score) for every class, in the model's class order."""
    if _task(metadata) != "classification":
        raise InvalidArgument(
            f"model '{name}' is a {_task(metadata)} model; classify needs a classification "
            "model (use predict" + (" or regress)" if _task(metadata) == "regression" else ")")
        )
    scores = np.asarray(outputs[signature.outputs[0].name])
    classes = [str(c) for c in metadata.get("class_names") or range(scores.shape[-1])]
    if scores.ndim != 2 or scores.shape[1] != len(classes):
        raise InvalidArgument(
            f"model '{name}': output '{signature.outputs[0].name}' has shape "
            f"{shape_text(scores.shape)}, not [batch, {len(classes)} classes]"
        )
    return [list(zip(classes, row.tolist(), strict=True)) for row in scores]


def parse_top_k(value: Any, name: str, metadata: Mapping[str, Any]) -> int:
    """The request's ``top_k``: a positive integer, at most the number of classes."""
    if _task(metadata) != "classification":
        raise InvalidArgument(
            f"'top_k' needs a classification model; model '{name}' is a {_task(metadata)} model"
        )
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"'top_k' must be a positive integer, got {value!r}")
    count = len(metadata.get("class_names") or [])
    if count and value > count:
        raise InvalidArgument(f"'top_k' is {value}, the model has {count} classes")
    return value


def top_k(
    name: str,
    metadata: Mapping[str, Any],
    signature: Signature,
    outputs: Mapping[str, Any],
    k: int,
) -> list[list[tuple[str, float]]]:
    """Per example: the ``k`` best (class name, score) pairs, best first (ties: class order)."""
    rows = classifications(name, metadata, signature, outputs)
    scores = np.array([[score for _, score in row] for row in rows])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [[row[i] for i in indices] for row, indices in zip(rows, order, strict=True)]


def regressions(
    name: str, metadata: Mapping[str, Any], signature: Signature, outputs: Mapping[str, Any]
) -> list[float]:
    """One value per example."""
    if _task(metadata) != "regression":
        raise InvalidArgument(
            f"model '{name}' is a {_task(metadata)} model; regress needs a regression model "
            "(use predict" + (" or classify)" if _task(metadata) == "classification" else ")")
        )
    values = np.asarray(outputs[signature.outputs[0].name])
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise InvalidArgument(
            f"model '{name}': output '{signature.outputs[0].name}' has shape "
            f"{shape_text(values.shape)}; regress needs one value per example"
        )
    return [float(v) for v in values]
