"""Examples (TF Serving's classify and regress requests) into the model's input arrays.

Each example's features are mapped to the inputs of the same name (flattened values, one
row each), as TF Serving's example parsing does. Examples arrive here protocol-neutral:
``{feature name: flat list of values}``, built by the REST layer from JSON and by the gRPC
layer from ``tf.Example`` protos; what the outputs then mean is ``dataplane/tasks.py``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from service.codecs.tensor_checks import check_numbers, has_bool, shape_text
from service.errors import InvalidArgument
from service.models.runtimes.base import Signature, TensorSpec

Example = Mapping[str, Sequence[Any]]


def check_signature_name(requested: str | None, signature: Signature, api: str) -> None:
    """A request's ``signature_name`` for ``api`` (predict, classify, regress): the served
    signature, or one of its aliases for that API (model_view.with_aliases)."""
    if requested is not None and not isinstance(requested, str):
        raise InvalidArgument(f"'signature_name' must be a string, got {type(requested).__name__}")
    others = signature.aliases.get(api, frozenset())
    if requested in (None, "", signature.name) or requested in others:
        return
    usable = ", ".join(f"'{n}'" for n in [signature.name, *sorted(others)])
    if requested in signature.aliases.get("all", ()):
        # For predict, the SavedModel runtime runs any other signature by name (the front
        # door switched to it before this check): here the runtime is one that cannot.
        how = (
            " (other signatures run by name under the SavedModel runtime: "
            "--model-runtime NAME=savedmodel)"
            if api == "predict"
            else ""
        )
        raise InvalidArgument(
            f"signature '{requested}' cannot answer {api}; for {api} this model serves "
            f"{usable}{how}"
        )
    also = f" (for {api} also: {usable.split(', ', 1)[1]})" if others else ""
    raise InvalidArgument(
        f"signature '{requested}' not found; this model serves '{signature.name}'{also}"
    )


def examples_to_inputs(
    examples: Sequence[Example], signature: Signature, context: Example | None = None
) -> dict[str, np.ndarray]:
    """One row per example for every input, from the feature named like the input.

    ``context``: features shared by every example, an example's own value winning; those
    named like an input are checked even where every example has its own, so a request
    the server takes never carries a malformed value. Features the model does not use are
    ignored, as TF Serving's example parsing does.
    """
    if not examples:
        raise InvalidArgument("'examples' is empty; send at least one example")
    for spec in signature.inputs:
        row_shape = spec.shape[1:]
        if any(d == -1 for d in row_shape):
            raise InvalidArgument(
                f"input '{spec.name}' has shape {shape_text(spec.shape)}; examples can only "
                "fill inputs whose row shape is fixed: use predict"
            )
    if context:
        shared = [spec for spec in signature.inputs if spec.name in context]
        _inputs([context], shared, signature, lambda _: "'context'")
        examples = [{**context, **example} for example in examples]
    return _inputs(examples, signature.inputs, signature, lambda index: f"example {index}")


def _inputs(
    examples: Sequence[Example],
    specs: Sequence[TensorSpec],
    signature: Signature,
    where: Callable[[int], str],
) -> dict[str, np.ndarray]:
    inputs = {}
    for spec in specs:
        row_shape = spec.shape[1:]
        size = int(np.prod(row_shape, dtype=np.int64))
        rows = []
        for index, example in enumerate(examples):
            if spec.name not in example:
                raise InvalidArgument(
                    f"{where(index)} has no feature '{spec.name}'; the model's inputs are "
                    + ", ".join(f"'{n}'" for n in signature.input_names)
                )
            values = example[spec.name]
            if len(values) != size:
                raise InvalidArgument(
                    f"{where(index)}, feature '{spec.name}': {len(values)} values; the input "
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
        # numpy reads booleans among numbers as 0 and 1; only a boolean input takes them.
        if spec.dtype.kind != "b" and (array.dtype.kind == "b" or has_bool(rows)):
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
