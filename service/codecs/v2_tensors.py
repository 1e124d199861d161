"""Open Inference Protocol (KServe V2 / Triton) infer requests and responses, validated.

Supports JSON tensors and the binary tensor data extension: when the request carries an
``Inference-Header-Content-Length`` header, that many bytes of JSON come first and the raw
little-endian tensor bytes of inputs marked ``binary_data_size`` follow, in input order.
Outputs are returned as binary when asked per output (``binary_data``) or for the whole
request (``binary_data_output``), the way Triton does.

The classification extension is supported too: ``"parameters": {"classification": k}`` on a
requested ``[batch, classes]`` output returns, instead of the scores, a BYTES tensor
``[batch, k]`` of ``"value:index:label"`` strings, highest value first, labels from the
model's class names.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from service.codecs.json_body import whole_number
from service.codecs.json_floats import json_floats
from service.codecs.json_tensors import Path, parse_tensor_body
from service.codecs.tensor_checks import (
    DeclaredLimits,
    as_array,
    cast_checked,
    check_declared,
    check_numbers,
    shape_text,
)
from service.errors import InvalidArgument
from service.models.runtimes.base import Signature, TensorSpec

DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    # Strings: JSON strings, or in binary each element as a 4-byte little-endian length
    # followed by its UTF-8 bytes (Triton's layout).
    "BYTES": np.dtype(object),
}
DATATYPE_OF: dict[np.dtype, str] = {dtype: name for name, dtype in DATATYPES.items()}
HEADER_LENGTH = "Inference-Header-Content-Length"
# Where an infer request's JSON holds tensors.
INFER_TENSORS: frozenset[Path] = frozenset({("inputs", "*", "data")})


def datatype_of(dtype: np.dtype) -> str:
    try:
        return DATATYPE_OF[np.dtype(dtype)]
    except KeyError:
        raise InvalidArgument(f"tensor type {dtype} has no V2 datatype") from None


def tensor_metadata(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": datatype_of(spec.dtype), "shape": list(spec.shape)}


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool
    # Top-k classifications instead of the raw tensor; 0 = the tensor itself.
    classification: int = 0


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: list[RequestedOutput]


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _parameters(entry: dict[str, Any], what: str) -> dict[str, Any]:
    given = entry.get("parameters")
    return {} if given is None else _object(given, f"{what} 'parameters'")


def _flag(parameters: dict[str, Any], key: str, default: bool, what: str) -> bool:
    """A boolean parameter; absent or null means ``default``."""
    value = parameters.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidArgument(f"{what} '{key}' must be true or false, got {_json_type(value)}")
    return value


def split_body(
    raw: bytes | memoryview, header_length: str | None, allow_non_finite: bool, numbers_only: bool
) -> tuple[Any, memoryview, bool]:
    """The JSON header (parsed), the binary tail after it, and whether a boolean may hide
    among the numbers of its JSON tensors. With ``numbers_only`` (no input takes strings:
    ``Signature.takes_numbers_only``) the tensors are read as arrays."""
    if header_length is None:
        size = len(raw)
    else:
        try:
            size = int(header_length)
        except ValueError:
            raise InvalidArgument(
                f"{HEADER_LENGTH} must be an integer, got {header_length!r}"
            ) from None
        if not 0 < size <= len(raw):
            raise InvalidArgument(f"{HEADER_LENGTH} is {size} but the body has {len(raw)} bytes")
    header, may_hold_bool = parse_tensor_body(
        raw[:size], INFER_TENSORS, numbers_only, allow_non_finite
    )
    return header, memoryview(raw)[size:], may_hold_bool


def decode_infer(
    raw: bytes | memoryview,
    header_length: str | None,
    signature: Signature,
    limits: DeclaredLimits,
    allow_non_finite: bool = False,
) -> InferRequest:
    header, binary, may_hold_bool = split_body(
        raw, header_length, allow_non_finite, signature.takes_numbers_only
    )
    body = _object(header, "request body")
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidArgument(f"'id' must be a string, got {type(request_id).__name__}")
    entries = body.get("inputs")
    if not isinstance(entries, list) or not entries:
        raise InvalidArgument("'inputs' must be a non-empty list of tensors")

    specs = {spec.name: spec for spec in signature.inputs}
    inputs: dict[str, np.ndarray] = {}
    offset = 0
    for index, item in enumerate(entries):
        entry = _object(item, f"inputs[{index}]")
        name = entry.get("name")
        spec = input_spec(name, index, specs, inputs)
        array, used = _decode_tensor(entry, spec, binary[offset:], limits, may_hold_bool)
        inputs[name] = array
        offset += used
    check_all_given(inputs, signature)
    if offset != len(binary):
        raise InvalidArgument(
            f"the body has {len(binary) - offset} bytes of binary data that no input claims "
            f"(inputs declare {offset} in binary_data_size)"
        )
    return InferRequest(request_id, inputs, _requested_outputs(body, signature))


def input_spec(
    name: Any, index: int, specs: dict[str, TensorSpec], given: dict[str, np.ndarray]
) -> TensorSpec:
    """The model input the request's ``inputs[index]`` names; each may come once."""
    if not isinstance(name, str):
        raise InvalidArgument(f"inputs[{index}]: 'name' must be a string, got {_json_type(name)}")
    if name not in specs:
        known = ", ".join(f"'{n}'" for n in specs)
        raise InvalidArgument(
            f"inputs[{index}]: unknown input {name!r}; the model's inputs are {known}"
        )
    if name in given:
        raise InvalidArgument(f"input '{name}' is given twice")
    return specs[name]


def check_all_given(inputs: dict[str, np.ndarray], signature: Signature) -> None:
    missing = [n for n in signature.input_names if n not in inputs]
    if missing:
        raise InvalidArgument("missing input " + ", ".join(f"'{n}'" for n in missing))


def output_spec(
    name: Any, index: int, signature: Signature, chosen: list[RequestedOutput]
) -> TensorSpec:
    """The model output the request's ``outputs[index]`` names; each may come once."""
    if not isinstance(name, str):
        raise InvalidArgument(f"outputs[{index}]: 'name' must be a string, got {_json_type(name)}")
    specs = {spec.name: spec for spec in signature.outputs}
    if name not in specs:
        known = ", ".join(f"'{n}'" for n in signature.output_names)
        raise InvalidArgument(
            f"outputs[{index}]: unknown output {name!r}; the model's outputs are {known}"
        )
    if any(c.name == name for c in chosen):
        raise InvalidArgument(f"output '{name}' is requested twice")
    return specs[name]


def raw_array(chunk: memoryview | bytes, dtype: np.dtype, label: str) -> np.ndarray:
    """Little-endian tensor bytes (whose length the caller checked) as an array of
    ``dtype``; BOOL bytes must be 0 or 1. Bytes at an odd address are copied once, since
    runtimes want aligned memory (tfship's HTTP worker places them on a 64-byte boundary:
    service/http_server/body_buffers.py)."""
    if dtype.kind == "b":
        values = np.frombuffer(chunk, dtype=np.uint8)
        if values.size and values.max() > 1:
            raise InvalidArgument(f"{label}: BOOL bytes must be 0 or 1")
        return values.astype(np.bool_)
    array = np.frombuffer(chunk, dtype=dtype.newbyteorder("<"))
    if not array.flags.aligned:
        array = array.copy()
    return check_numbers(array, dtype, label)


def _json_type(value: Any) -> str:
    """How a JSON value's type reads in a message (``[]`` is a list, not a "list")."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(
        type(value), f"the number {value!r}" if isinstance(value, int | float) else "?"
    )


def check_tensor_header(
    datatype: Any, shape: Any, spec: TensorSpec, label: str, limits: DeclaredLimits
) -> tuple[int, list[int]]:
    """A declared datatype and shape against the model's input and the row limit; the
    element count and the shape as ints (JSON's ``8.0`` is 8). Shared by the REST and
    gRPC codecs, and run before anything is allocated."""
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        known = ", ".join(DATATYPES)
        raise InvalidArgument(
            f"{label}: datatype {datatype!r} is not supported (use one of {known})"
        )
    expected = datatype_of(spec.dtype)
    if datatype != expected:
        raise InvalidArgument(f"{label}: datatype {datatype} does not match the model's {expected}")
    dims = [whole_number(d) for d in shape] if isinstance(shape, list) else [None]
    if not all(d is not None and d >= 0 for d in dims):
        raise InvalidArgument(
            f"{label}: 'shape' must be a list of non-negative integers, got {shape!r}"
        )
    checked = [d for d in dims if d is not None]  # all of them: checked just above
    return check_declared(tuple(checked), spec, label, limits), checked


def _decode_tensor(
    entry: dict[str, Any],
    spec: TensorSpec,
    binary: memoryview,
    limits: DeclaredLimits,
    may_hold_bool: bool,
) -> tuple[np.ndarray, int]:
    label = f"input '{spec.name}'"
    datatype = entry.get("datatype")
    count, shape = check_tensor_header(datatype, entry.get("shape"), spec, label, limits)
    dtype = DATATYPES[datatype]

    size = _parameters(entry, label).get("binary_data_size")
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidArgument(
                f"{label}: binary_data_size must be a non-negative integer (bytes), "
                f"got {_json_type(size)}"
            )
        if "data" in entry:
            raise InvalidArgument(f"{label}: has both 'data' and binary_data_size")
        if datatype != "BYTES":  # BYTES elements have their own lengths inside
            want = count * dtype.itemsize
            if size != want:
                raise InvalidArgument(
                    f"{label}: binary_data_size is {size}, but shape "
                    f"{shape_text(shape)} of {datatype} needs {want} bytes"
                )
        if len(binary) < size:
            raise InvalidArgument(
                f"{label}: binary_data_size is {size}, but only "
                f"{len(binary)} bytes of binary data remain in the body"
            )
        # Bytes after a JSON header of odd length can sit at any address (raw_array copies).
        chunk = binary[:size]
        if datatype == "BYTES":
            return decode_bytes(chunk, count, label).reshape(shape), size
        return raw_array(chunk, dtype, label).reshape(shape), size

    if "data" not in entry:
        raise InvalidArgument(f"{label}: no 'data' and no binary_data_size parameter")
    data = entry["data"]
    array = as_array(data, spec, label)
    if array.size != count:
        raise InvalidArgument(
            f"{label}: shape {shape_text(shape)} needs {count} values, got {array.size}"
        )
    array = cast_checked(array, data, dtype, label, may_hold_bool)
    return array.reshape(shape), 0


def decode_bytes(chunk: memoryview, count: int, label: str) -> np.ndarray:
    """Length-prefixed BYTES elements -> an object array of str."""
    # Each element takes at least its 4-byte length: checked before the array is made,
    # so a short body cannot declare a huge one.
    if count * 4 > len(chunk):
        raise InvalidArgument(
            f"{label}: {len(chunk)} bytes of BYTES data cannot hold {count} elements "
            "(each takes at least a 4-byte length)"
        )
    values = np.empty(count, dtype=object)
    at = 0
    for i in range(count):
        if at + 4 > len(chunk):
            raise InvalidArgument(f"{label}: BYTES data ends before element {i} of {count}")
        length = int.from_bytes(chunk[at : at + 4], "little")
        at += 4
        if at + length > len(chunk):
            raise InvalidArgument(f"{label}: BYTES element {i} runs past binary_data_size")
        try:
            values[i] = bytes(chunk[at : at + length]).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidArgument(f"{label}: BYTES element {i} is not UTF-8 text") from None
        at += length
    if at != len(chunk):
        raise InvalidArgument(
            f"{label}: {len(chunk) - at} bytes left over after {count} BYTES elements"
        )
    return values


def _requested_outputs(body: dict[str, Any], signature: Signature) -> list[RequestedOutput]:
    binary_default = _flag(_parameters(body, "request"), "binary_data_output", False, "request")
    requested = body.get("outputs")
    if requested is None:
        return [RequestedOutput(name, binary_default) for name in signature.output_names]
    if not isinstance(requested, list):
        raise InvalidArgument("'outputs' must be a list of {\"name\": ...} objects")
    chosen: list[RequestedOutput] = []
    for index, item in enumerate(requested):
        entry = _object(item, f"outputs[{index}]")
        name = entry.get("name")
        spec = output_spec(name, index, signature, chosen)
        parameters = _parameters(entry, f"output '{name}'")
        binary = _flag(parameters, "binary_data", binary_default, f"output '{name}'")
        classes = classification_count(parameters.get("classification", 0), spec)
        chosen.append(RequestedOutput(name, binary, classes))
    return chosen


def classification_count(count: Any, spec: TensorSpec) -> int:
    label = f"output '{spec.name}': classification"
    given = count
    count = whole_number(given)
    if count is None or count < 0:
        raise InvalidArgument(f"{label} must be a positive integer, got {given!r}")
    if count == 0:
        return 0
    if len(spec.shape) != 2:
        raise InvalidArgument(
            f"{label} needs an output of shape [batch, classes], this one "
            f"is {shape_text(spec.shape)}"
        )
    if spec.shape[1] != -1 and count > spec.shape[1]:
        raise InvalidArgument(f"{label} asks for {count} classes, the output has {spec.shape[1]}")
    return count


def classify(scores: np.ndarray, count: int, labels: list[str] | None) -> np.ndarray:
    """Top ``count`` per row as Triton's "value:index[:label]" strings, best first."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :count]
    rows = []
    for row, indices in zip(scores, order, strict=True):
        rows.append(
            [
                f"{row[i]}:{i}" + (f":{labels[i]}" if labels and i < len(labels) else "")
                for i in indices
            ]
        )
    return np.array(rows, dtype=object).reshape(len(scores), count)


def bytes_blob(array: np.ndarray) -> bytes:
    parts = []
    for item in array.reshape(-1):
        data = item.encode() if isinstance(item, str) else bytes(item)
        parts.append(struct.pack("<I", len(data)) + data)
    return b"".join(parts)


def output_tensor(
    wanted: RequestedOutput, outputs: dict[str, np.ndarray], labels: list[str] | None
) -> tuple[np.ndarray, str]:
    """A requested output as sent (its classification strings when asked) and its datatype;
    shared by the REST and gRPC encoders."""
    array = np.ascontiguousarray(outputs[wanted.name])
    if wanted.classification:
        array = classify(array, wanted.classification, labels)
    return array, "BYTES" if array.dtype == object else datatype_of(array.dtype)


def encode_infer(
    model_name: str,
    model_version: str,
    request: InferRequest,
    outputs: dict[str, np.ndarray],
    labels: list[str] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Response body and headers; binary outputs go after the JSON, in output order."""
    tensors: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for wanted in request.outputs:
        array, datatype = output_tensor(wanted, outputs, labels)
        tensor: dict[str, Any] = {
            "name": wanted.name,
            "datatype": datatype,
            "shape": list(array.shape),
        }
        if wanted.binary:
            if datatype == "BYTES":
                blob = bytes_blob(array)
            else:
                blob = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            flat = array.reshape(-1)
            tensor["data"] = flat.tolist() if datatype == "BYTES" else json_floats(flat)
        tensors.append(tensor)
    response: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request.id is not None:
        response["id"] = request.id
    response["outputs"] = tensors
    header = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, {"Content-Type": "application/json"}
    return header + b"".join(blobs), {
        "Content-Type": "application/octet-stream",
        HEADER_LENGTH: str(len(header)),
    }
