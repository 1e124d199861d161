"""``tensorflow.TensorProto`` <-> numpy, without TensorFlow.

Decoding accepts both encodings TF clients produce: ``tensor_content`` (raw little-endian
bytes, what ``tf.make_tensor_proto`` writes for numpy arrays) and the typed repeated fields
(``float_val``, ``int_val``...; a single value fills the whole shape, as in TensorFlow).
Encoding always writes ``tensor_content``: one copy, no per-element work.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from service.codecs.grpc_protos import enum_values, message
from service.codecs.tensor_checks import (
    DeclaredLimits,
    check_declared,
    check_fill,
    check_numbers,
    shape_text,
)
from service.errors import InvalidArgument
from service.models.runtimes.base import TensorSpec

_DATA_TYPES = enum_values("tensorflow.DataType")
_NUMPY_OF: dict[int, np.dtype] = {
    _DATA_TYPES[name]: np.dtype(dtype)
    for name, dtype in (
        ("DT_FLOAT", np.float32),
        ("DT_DOUBLE", np.float64),
        ("DT_HALF", np.float16),
        ("DT_INT8", np.int8),
        ("DT_INT16", np.int16),
        ("DT_INT32", np.int32),
        ("DT_INT64", np.int64),
        ("DT_UINT8", np.uint8),
        ("DT_UINT16", np.uint16),
        ("DT_UINT32", np.uint32),
        ("DT_UINT64", np.uint64),
        ("DT_BOOL", np.bool_),
    )
}
_DT_STRING = _DATA_TYPES["DT_STRING"]
# String inputs are object arrays of str on the server side.
_ENUM_OF: dict[np.dtype, int] = {dtype: number for number, dtype in _NUMPY_OF.items()} | {
    np.dtype(object): _DT_STRING
}
_NAME_OF = {number: name for name, number in _DATA_TYPES.items()}

# Which repeated field holds the values of each dtype when tensor_content is empty.
_FIELD_OF: dict[int, str] = {
    _DATA_TYPES["DT_FLOAT"]: "float_val",
    _DATA_TYPES["DT_DOUBLE"]: "double_val",
    _DATA_TYPES["DT_HALF"]: "half_val",
    _DATA_TYPES["DT_INT8"]: "int_val",
    _DATA_TYPES["DT_INT16"]: "int_val",
    _DATA_TYPES["DT_INT32"]: "int_val",
    _DATA_TYPES["DT_UINT8"]: "int_val",
    _DATA_TYPES["DT_UINT16"]: "int_val",
    _DATA_TYPES["DT_INT64"]: "int64_val",
    _DATA_TYPES["DT_UINT32"]: "uint32_val",
    _DATA_TYPES["DT_UINT64"]: "uint64_val",
    _DATA_TYPES["DT_BOOL"]: "bool_val",
}

TensorProto = message("tensorflow.TensorProto")


def dtype_name(number: int) -> str:
    """``1`` -> ``float`` as TF Serving's messages name types."""
    return _NAME_OF.get(number, str(number)).removeprefix("DT_").lower()


def dtype_enum(dtype: np.dtype) -> int:
    return _ENUM_OF[np.dtype(dtype)]


def to_numpy(proto: Any, spec: TensorSpec, label: str, limits: DeclaredLimits) -> np.ndarray:
    """A TensorProto -> an array of its own dtype, of a shape the model takes; refused
    (InvalidArgument) when malformed, and before any allocation when its declared shape
    does not fit the model, the row limit or the values that came."""
    if proto.tensor_shape.unknown_rank:
        raise InvalidArgument(f"{label}: the tensor has an unknown rank; send its shape")
    shape = tuple(dim.size for dim in proto.tensor_shape.dim)
    if any(d < 0 for d in shape):
        raise InvalidArgument(f"{label}: negative dimension in shape {shape_text(shape)}")
    count = check_declared(shape, spec, label, limits)
    if proto.dtype == _DT_STRING:
        return _strings(proto, shape, count, label, limits)
    dtype = _NUMPY_OF.get(proto.dtype)
    if dtype is None:
        raise InvalidArgument(f"{label}: tensor type {dtype_name(proto.dtype)} is not supported")
    # Read once: protobuf (upb) copies a bytes field into a new object at every access.
    content = proto.tensor_content
    if content:
        expected = count * dtype.itemsize
        if len(content) != expected:
            raise InvalidArgument(
                f"{label}: tensor_content has {len(content)} bytes; shape "
                f"{shape_text(shape)} of {dtype_name(proto.dtype)} needs {expected}"
            )
        return np.frombuffer(content, dtype=dtype.newbyteorder("<")).reshape(shape)
    values = getattr(proto, _FIELD_OF[proto.dtype])
    _check_count(len(values), shape, count, label, "values", dtype, limits)
    if proto.dtype == _DATA_TYPES["DT_HALF"]:
        flat = _half_bits(values, label)
    else:
        flat = np.asarray(values, dtype=dtype)
    return _shaped(flat, shape, count)


def _half_bits(values: Any, label: str) -> np.ndarray:
    """half_val holds float16 bit patterns in int32 fields: anything outside 0..65535 is
    not one (numpy would wrap it into another number)."""
    bits = np.asarray(values, dtype=np.int64)
    if bits.size and (bits.min() < 0 or bits.max() > 0xFFFF):
        raise InvalidArgument(
            f"{label}: half_val holds float16 bit patterns, 0..65535; got "
            f"{int(bits.min())}..{int(bits.max())}"
        )
    return bits.astype(np.uint16).view(np.float16)


def _strings(
    proto: Any, shape: tuple[int, ...], count: int, label: str, limits: DeclaredLimits
) -> np.ndarray:
    _check_count(len(proto.string_val), shape, count, label, "strings", np.dtype(object), limits)
    try:
        text = [v.decode("utf-8") for v in proto.string_val]
    except UnicodeDecodeError:
        raise InvalidArgument(f"{label}: strings must be UTF-8 text") from None
    return _shaped(np.array(text, dtype=object), shape, count)


def _check_count(
    given: int,
    shape: tuple[int, ...],
    count: int,
    label: str,
    noun: str,
    dtype: np.dtype,
    limits: DeclaredLimits,
) -> None:
    """As many values as the shape has elements, or one to fill it (TensorFlow's
    convention), checked before the fill allocates anything."""
    if given == count:
        return
    if given == 1:
        # A string fill holds one reference per element: object's itemsize counts it.
        check_fill(count, dtype, label, limits)
        return
    raise InvalidArgument(
        f"{label}: {given} {noun} for shape {shape_text(shape)} ({count} elements)"
    )


def _shaped(flat: np.ndarray, shape: tuple[int, ...], count: int) -> np.ndarray:
    if len(flat) == count:
        return flat.reshape(shape)
    return np.full(shape, flat[0], dtype=flat.dtype)


def to_dtype(array: np.ndarray, dtype: np.dtype, label: str) -> np.ndarray:
    """Convert to the signature's dtype where no value changes (TF clients often send
    float64 or int32 for a float32 input); refuse booleans <-> numbers, NaN and Infinity."""
    # Strings and booleans are never converted to or from numbers: they match or fail.
    for kind in ("O", "b"):
        if (array.dtype.kind == kind) != (dtype.kind == kind):
            raise InvalidArgument(
                f"{label}: expected {dtype_name(dtype_enum(dtype))}, "
                f"got {dtype_name(dtype_enum(array.dtype))}"
            )
        if dtype.kind == kind:
            return array
    # Also for the same dtype: NaN and Infinity are refused whatever the protocol.
    return check_numbers(array, dtype, label)


def write_tensor(proto: Any, array: np.ndarray) -> None:
    """Fill an empty TensorProto (e.g. a response's map entry) from an array."""
    array = np.asarray(array)
    if array.dtype.kind in "US":
        proto.dtype = _DT_STRING
        proto.string_val.extend(
            v.encode() if isinstance(v, str) else bytes(v) for v in array.reshape(-1).tolist()
        )
    else:
        proto.dtype = dtype_enum(array.dtype)
        proto.tensor_content = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    for size in array.shape:
        proto.tensor_shape.dim.add().size = size
