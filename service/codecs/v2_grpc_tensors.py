"""Open Inference Protocol gRPC: ``ModelInferRequest`` -> numpy inputs, outputs -> response.

A tensor's values come either in its typed ``contents`` (``fp32_contents``...), or, for
every input at once, in ``raw_input_contents``: one little-endian byte string per input, in
input order (BYTES elements each prefixed by a 4-byte length), which is what Triton's client
sends. Every declared shape is checked against the model and against the number of values
or bytes that came before anything is allocated, so a small request cannot declare a huge
tensor. Outputs go back in ``raw_output_contents``; ``"classification": k`` on a requested
output answers Triton's classification strings instead, as over REST.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from service.codecs.tensor_checks import DeclaredLimits, check_numbers
from service.codecs.v2_grpc_protos import message
from service.codecs.v2_tensors import (
    DATATYPES,
    InferRequest,
    RequestedOutput,
    bytes_blob,
    check_all_given,
    check_tensor_header,
    classification_count,
    decode_bytes,
    input_spec,
    output_spec,
    output_tensor,
    raw_array,
)
from service.errors import InvalidArgument
from service.models.runtimes.base import Signature, TensorSpec

# The typed field that carries each datatype (FP16 has none: raw contents only).
_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
_Response = message("ModelInferResponse")


def decode_request(request: Any, signature: Signature, limits: DeclaredLimits) -> InferRequest:
    specs = {spec.name: spec for spec in signature.inputs}
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise InvalidArgument(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs; "
            "with raw contents every input needs one, in input order"
        )
    inputs: dict[str, np.ndarray] = {}
    for index, tensor in enumerate(request.inputs):
        spec = input_spec(tensor.name, index, specs, inputs)
        label = f"input '{spec.name}'"
        count, shape = check_tensor_header(tensor.datatype, list(tensor.shape), spec, label, limits)
        if raw:
            if tensor.HasField("contents"):
                raise InvalidArgument(f"{label}: has contents and raw_input_contents; use one")
            array = _from_raw(raw[index], tensor.datatype, count, label)
        else:
            array = _from_contents(tensor, spec, count, label)
        inputs[tensor.name] = array.reshape(shape)
    check_all_given(inputs, signature)
    return InferRequest(request.id or None, inputs, _requested_outputs(request, signature))


def _from_raw(data: bytes, datatype: str, count: int, label: str) -> np.ndarray:
    if datatype == "BYTES":
        return decode_bytes(memoryview(data), count, label)
    dtype = DATATYPES[datatype]
    want = count * dtype.itemsize
    if len(data) != want:
        raise InvalidArgument(
            f"{label}: raw_input_contents holds {len(data)} bytes; the declared shape of "
            f"{datatype} needs {want}"
        )
    return raw_array(data, dtype, label)


def _from_contents(tensor: Any, spec: TensorSpec, count: int, label: str) -> np.ndarray:
    field = _CONTENTS.get(tensor.datatype)
    if field is None:
        raise InvalidArgument(f"{label}: {tensor.datatype} travels in raw_input_contents only")
    values = getattr(tensor.contents, field)
    if len(values) != count:
        raise InvalidArgument(
            f"{label}: contents.{field} holds {len(values)} values; the declared shape "
            f"needs {count}"
        )
    if tensor.datatype == "BYTES":
        array = np.empty(count, dtype=object)
        try:
            array[:] = [bytes(v).decode("utf-8") for v in values]
        except UnicodeDecodeError:
            raise InvalidArgument(f"{label}: BYTES elements must be UTF-8 text") from None
        return array
    dtype = DATATYPES[tensor.datatype]
    if dtype.kind == "b":
        return np.array(values, dtype=np.bool_)
    # The typed fields are wider than small types (int_contents is int32 for INT8):
    # check_numbers refuses values that do not fit rather than wrapping them.
    return check_numbers(np.array(values), dtype, label)


def _requested_outputs(request: Any, signature: Signature) -> list[RequestedOutput]:
    if not request.outputs:
        return [RequestedOutput(name, True) for name in signature.output_names]
    chosen: list[RequestedOutput] = []
    for index, wanted in enumerate(request.outputs):
        spec = output_spec(wanted.name, index, signature, chosen)
        count: Any = 0
        if "classification" in wanted.parameters:
            parameter = wanted.parameters["classification"]
            kind = parameter.WhichOneof("parameter_choice")
            count = getattr(parameter, kind) if kind in ("int64_param", "uint64_param") else None
        chosen.append(RequestedOutput(wanted.name, True, classification_count(count, spec)))
    return chosen


def encode_response(
    model_name: str,
    model_version: str,
    request: InferRequest,
    outputs: dict[str, np.ndarray],
    labels: list[str] | None = None,
) -> Any:
    response = _Response(model_name=model_name, model_version=model_version)
    if request.id is not None:
        response.id = request.id
    for wanted in request.outputs:
        array, datatype = output_tensor(wanted, outputs, labels)
        response.outputs.add(name=wanted.name, datatype=datatype, shape=list(array.shape))
        if datatype == "BYTES":
            response.raw_output_contents.append(bytes_blob(array))
        else:
            response.raw_output_contents.append(
                array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            )
    return response
