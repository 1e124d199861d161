"""Checks shared by every protocol: decoded JSON values -> arrays of the signature's dtype.

Each rejection is an InvalidArgument whose message starts with ``label`` (which input,
where in the request) and says what was expected and what came.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.errors import InvalidArgument
from service.models.runtimes.base import Signature, TensorSpec

_KIND_WORDS = {"U": "strings", "S": "strings", "b": "booleans (true/false)", "O": "null or mixed"}


def shape_text(shape: tuple[int, ...] | list[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def body_may_hold_bool(raw: bytes) -> bool:
    """False when the raw JSON has no ``true``/``false`` token, so no boolean can hide among
    numbers and ``cast_checked`` can skip its (slow) walk of the whole value."""
    return b"true" in raw or b"false" in raw


def _leading_depth(value: Any) -> int:
    depth = 0
    while isinstance(value, list) and value:
        depth += 1
        value = value[0]
    return depth


def has_bool(value: Any) -> bool:
    """A boolean anywhere in nested JSON lists."""
    if isinstance(value, bool):
        return True
    if isinstance(value, list):
        return any(has_bool(v) for v in value)
    return False


def as_array(value: Any, spec: TensorSpec, label: str) -> np.ndarray:
    """Nested JSON lists -> an array (any dtype yet), or a message for ragged/too deep lists."""
    try:
        return np.asarray(value)
    except ValueError:
        depth = _leading_depth(value)
        if depth > len(spec.shape):
            # numpy refuses more than 64 dimensions; say what is wrong, not "ragged".
            raise InvalidArgument(
                f"{label}: expected shape {shape_text(spec.shape)} (rank {len(spec.shape)}), "
                f"got lists nested {depth} deep"
            ) from None
        raise InvalidArgument(
            f"{label}: ragged nested lists (rows of different lengths); expected a "
            f"rectangular tensor of shape {shape_text(spec.shape)}"
        ) from None


@dataclass(frozen=True)
class DeclaredLimits:
    """What a request may make the server build, checked against the shapes it declares
    before anything is allocated for them (a few bytes can declare a huge tensor)."""

    # Rows one request may send (TFSHIP_MAX_ROWS); 0 = no limit.
    max_rows: int = 0
    # The most bytes one value may fill (TensorFlow's "one value fills the shape"):
    # the server's body limit, so no tensor it builds outgrows the largest body it takes.
    max_fill_bytes: int = 0


def check_rows(rows: int, max_rows: int) -> None:
    if max_rows and rows > max_rows:
        raise InvalidArgument(
            f"request has {rows} rows; the limit is {max_rows} per request "
            "(TFSHIP_MAX_ROWS): split it"
        )


def check_declared(
    shape: tuple[int, ...], spec: TensorSpec, label: str, limits: DeclaredLimits
) -> int:
    """A shape a request declares (V2's ``shape``, a TensorProto's dims) against the model
    and the row limit, before anything is built from it; its element count (exact: no
    int64 product to overflow)."""
    check_shape(shape, spec, label)
    if shape:
        check_rows(shape[0], limits.max_rows)
    return math.prod(shape)


def check_fill(count: int, dtype: np.dtype, label: str, limits: DeclaredLimits) -> None:
    """One value filling ``count`` elements: at most ``max_fill_bytes`` of them."""
    size = count * np.dtype(dtype).itemsize
    if limits.max_fill_bytes and size > limits.max_fill_bytes:
        raise InvalidArgument(
            f"{label}: one value cannot fill {count} elements ({size} bytes); the most a "
            f"request may fill is {limits.max_fill_bytes} bytes (TFSHIP_MAX_BODY_BYTES): "
            "send the values"
        )


def batch_rows(inputs: Mapping[str, Any], signature: Signature) -> int:
    """The rows of a request: every input with a batch dimension must have the same
    number (runtimes fail on a mismatch with an error that names nothing)."""
    sizes = {}
    for spec in signature.inputs:
        array = inputs.get(spec.name)
        if array is not None and spec.shape and spec.shape[0] == -1 and np.ndim(array):
            sizes[spec.name] = len(array)
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"'{name}' {rows}" for name, rows in sizes.items())
        raise InvalidArgument(
            f"inputs have different batch sizes ({listed}); every input needs the same "
            "number of rows"
        )
    if sizes:
        return next(iter(sizes.values()))
    first = next(iter(inputs.values()), None)
    return len(first) if first is not None and np.ndim(first) else 1


def check_shape(shape: tuple[int, ...], spec: TensorSpec, label: str) -> None:
    """Rank and every fixed dimension against the signature; a batch of at least one."""
    if len(shape) != len(spec.shape):
        raise InvalidArgument(
            f"{label}: expected shape {shape_text(spec.shape)} (rank {len(spec.shape)}), "
            f"got shape {shape_text(shape)} (rank {len(shape)})"
        )
    for axis, (want, got) in enumerate(zip(spec.shape, shape, strict=True)):
        if want != -1 and want != got:
            raise InvalidArgument(
                f"{label}: dimension {axis} must be {want}, got {got} "
                f"(expected shape {shape_text(spec.shape)}, got {shape_text(shape)})"
            )
    if shape and shape[0] == 0:
        raise InvalidArgument(f"{label}: empty batch; send at least one row")


def cast_checked(
    array: np.ndarray, value: Any, dtype: np.dtype, label: str, may_hold_bool: bool
) -> np.ndarray:
    """Element checks, then the cast to the signature's dtype.

    ``value`` is the JSON value ``array`` came from; it is walked for booleans hidden among
    numbers only when ``may_hold_bool`` (the raw body contains ``true`` or ``false``).
    """
    kind = array.dtype.kind
    if dtype.kind == "O":
        return check_strings(value, label)
    wants_bool = dtype.kind == "b"
    if wants_bool:
        if kind != "b":
            raise InvalidArgument(f"{label}: expected booleans (true/false), got {_words(kind)}")
        return array
    if kind in _KIND_WORDS:
        raise InvalidArgument(f"{label}: expected numbers of type {dtype.name}, got {_words(kind)}")
    if may_hold_bool and has_bool(value):
        raise InvalidArgument(
            f"{label}: expected numbers of type {dtype.name}, got a boolean (true/false)"
        )
    return check_numbers(array, dtype, label)


def _text(value: Any, label: str) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return [_text(v, label) for v in value]
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        # TF Serving's REST encoding of binary strings.
        try:
            return base64.b64decode(value["b64"], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidArgument(f"{label}: 'b64' must hold base64 of UTF-8 text") from None
    raise InvalidArgument(f"{label}: expected strings, got {type(value).__name__} {value!r:.40}")


def check_strings(value: Any, label: str) -> np.ndarray:
    """JSON strings (or TF Serving's {"b64": ...}) for a string input -> an object array.

    Every element is checked: numpy would quietly turn a number among strings into text.
    """
    return np.array(_text(value, label), dtype=object)


def check_numbers(array: np.ndarray, dtype: np.dtype, label: str) -> np.ndarray:
    """Numeric array -> dtype, refusing NaN/Infinity for an integer input, fractions for
    integers, overflow, and integers a float input cannot hold exactly. Floats are rounded
    to the nearest value of a narrower float dtype (JSON's decimal numbers have no exact
    float32 value anyway), as TensorFlow Serving does. NaN and Infinity for a float input
    pass: whether the server takes them is its policy (TFSHIP_NON_FINITE), applied by the
    dataplane to every protocol."""
    kind = array.dtype.kind
    finite: np.ndarray | None = None
    if kind == "f":
        finite = np.isfinite(array)
        if finite.all():
            finite = None
        elif dtype.kind != "f":
            raise InvalidArgument(f"{label}: NaN and Infinity are not accepted")
    if dtype.kind in "iu":
        if kind == "f" and not np.all(np.mod(array, 1) == 0):
            raise InvalidArgument(f"{label}: expected integers ({dtype.name}), got fractions")
        if array.size:
            info = np.iinfo(dtype)
            # As Python numbers, which compare exactly: numpy would compare 2.0**63 with
            # int64's maximum as floats, find them equal, and let the cast wrap.
            low, high = array.min().item(), array.max().item()
            if low < info.min or high > info.max:
                raise InvalidArgument(
                    f"{label}: values must fit {dtype.name} ({info.min}..{info.max}), "
                    f"got {_number(low)}..{_number(high)}"
                )
    elif dtype.kind == "f" and array.size and kind in "iu":
        # Integers convert exactly up to 2^24 (float32) or 2^53 (float64); past that the
        # nearest float is another number, which no one asked for.
        exact = 2 ** (np.finfo(dtype).nmant + 1)
        if array.min() < -exact or array.max() > exact:
            converted = array.astype(dtype)
            if not np.array_equal(converted.astype(array.dtype), array):
                raise InvalidArgument(
                    f"{label}: integers beyond ±{exact} do not convert exactly to "
                    f"{dtype.name}; send them as floats, or cast them first"
                )
    elif dtype.kind == "f" and array.size and kind == "f":
        limit = np.finfo(dtype).max
        # NaN and Infinity are not overflow: only finite values are measured.
        measured = array if finite is None else np.where(finite, array, 0)
        if np.abs(measured).max() > limit:
            raise InvalidArgument(
                f"{label}: values must fit {dtype.name} (magnitude up to {float(limit):.4g})"
            )
    return array.astype(dtype, copy=False)


def _words(kind: str) -> str:
    return _KIND_WORDS.get(kind, "numbers")


def _number(value: Any) -> str:
    as_float = float(value)
    return str(int(as_float)) if math.isfinite(as_float) and as_float.is_integer() else str(value)
