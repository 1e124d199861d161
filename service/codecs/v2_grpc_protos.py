"""The Open Inference Protocol's gRPC messages (``inference.GRPCInferenceService``).

KServe, Triton and MLServer expose this service; tfship answers the RPCs it serves. No
package tfship depends on ships these messages (tritonclient does, but it is a client), so
they are declared here, field by field from the protocol's specification (KServe's
``grpc_predict_v2.proto``, with Triton's ModelConfig, RepositoryIndex and ModelStatistics
extensions), and built into a private descriptor pool at import. What matters on the wire is
each field's number and type, which these declarations keep; message names follow the
specification so errors read the same. Of Triton's large ``ModelConfig``, only the fields a
configuration answer fills are declared (name, platform, backend, max_batch_size, input,
output); a client reading the full message sees the others unset. ModelStatistics leaves
out memory_usage and response_stats (fields 8 and 9), which tfship does not measure.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "inference"
SERVICE = f"{PACKAGE}.GRPCInferenceService"

_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "bool": _F.TYPE_BOOL,
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
    "int32": _F.TYPE_INT32,
    "int64": _F.TYPE_INT64,
    "uint32": _F.TYPE_UINT32,
    "uint64": _F.TYPE_UINT64,
    "float": _F.TYPE_FLOAT,
    "double": _F.TYPE_DOUBLE,
}
_PARAMETERS = "map<InferParameter>"

# Message -> fields: (name, number, type, "repeated" | "" | a oneof's name). A type is a
# scalar, another message of this file, the enum DataType, or a map from string to
# InferParameter (the protocol's one kind of map).
MESSAGES: dict[str, list[tuple[str, int, str, str]]] = {
    "ServerLiveRequest": [],
    "ServerLiveResponse": [("live", 1, "bool", "")],
    "ServerReadyRequest": [],
    "ServerReadyResponse": [("ready", 1, "bool", "")],
    "ModelReadyRequest": [("name", 1, "string", ""), ("version", 2, "string", "")],
    "ModelReadyResponse": [("ready", 1, "bool", "")],
    "ServerMetadataRequest": [],
    "ServerMetadataResponse": [
        ("name", 1, "string", ""),
        ("version", 2, "string", ""),
        ("extensions", 3, "string", "repeated"),
    ],
    "ModelMetadataRequest": [("name", 1, "string", ""), ("version", 2, "string", "")],
    "TensorMetadata": [
        ("name", 1, "string", ""),
        ("datatype", 2, "string", ""),
        ("shape", 3, "int64", "repeated"),
    ],
    "ModelMetadataResponse": [
        ("name", 1, "string", ""),
        ("versions", 2, "string", "repeated"),
        ("platform", 3, "string", ""),
        ("inputs", 4, "TensorMetadata", "repeated"),
        ("outputs", 5, "TensorMetadata", "repeated"),
    ],
    "InferParameter": [
        ("bool_param", 1, "bool", "parameter_choice"),
        ("int64_param", 2, "int64", "parameter_choice"),
        ("string_param", 3, "string", "parameter_choice"),
        ("double_param", 4, "double", "parameter_choice"),
        ("uint64_param", 5, "uint64", "parameter_choice"),
    ],
    "InferTensorContents": [
        ("bool_contents", 1, "bool", "repeated"),
        ("int_contents", 2, "int32", "repeated"),
        ("int64_contents", 3, "int64", "repeated"),
        ("uint_contents", 4, "uint32", "repeated"),
        ("uint64_contents", 5, "uint64", "repeated"),
        ("fp32_contents", 6, "float", "repeated"),
        ("fp64_contents", 7, "double", "repeated"),
        ("bytes_contents", 8, "bytes", "repeated"),
    ],
    "InferInputTensor": [
        ("name", 1, "string", ""),
        ("datatype", 2, "string", ""),
        ("shape", 3, "int64", "repeated"),
        ("parameters", 4, _PARAMETERS, ""),
        ("contents", 5, "InferTensorContents", ""),
    ],
    "InferRequestedOutputTensor": [
        ("name", 1, "string", ""),
        ("parameters", 2, _PARAMETERS, ""),
    ],
    "ModelInferRequest": [
        ("model_name", 1, "string", ""),
        ("model_version", 2, "string", ""),
        ("id", 3, "string", ""),
        ("parameters", 4, _PARAMETERS, ""),
        ("inputs", 5, "InferInputTensor", "repeated"),
        ("outputs", 6, "InferRequestedOutputTensor", "repeated"),
        ("raw_input_contents", 7, "bytes", "repeated"),
    ],
    "InferOutputTensor": [
        ("name", 1, "string", ""),
        ("datatype", 2, "string", ""),
        ("shape", 3, "int64", "repeated"),
        ("parameters", 4, _PARAMETERS, ""),
        ("contents", 5, "InferTensorContents", ""),
    ],
    "ModelInferResponse": [
        ("model_name", 1, "string", ""),
        ("model_version", 2, "string", ""),
        ("id", 3, "string", ""),
        ("parameters", 4, _PARAMETERS, ""),
        ("outputs", 5, "InferOutputTensor", "repeated"),
        ("raw_output_contents", 6, "bytes", "repeated"),
    ],
    # Triton's extensions.
    "ModelConfigRequest": [("name", 1, "string", ""), ("version", 2, "string", "")],
    "ModelTensorReshape": [("shape", 1, "int64", "repeated")],
    "ModelInput": [
        ("name", 1, "string", ""),
        ("data_type", 2, "DataType", ""),
        ("dims", 4, "int64", "repeated"),
        ("reshape", 5, "ModelTensorReshape", ""),
    ],
    "ModelOutput": [
        ("name", 1, "string", ""),
        ("data_type", 2, "DataType", ""),
        ("dims", 3, "int64", "repeated"),
        ("label_filename", 4, "string", ""),
        ("reshape", 5, "ModelTensorReshape", ""),
    ],
    "ModelConfig": [
        ("name", 1, "string", ""),
        ("platform", 2, "string", ""),
        ("max_batch_size", 4, "int32", ""),
        ("input", 5, "ModelInput", "repeated"),
        ("output", 6, "ModelOutput", "repeated"),
        ("backend", 17, "string", ""),
    ],
    "ModelConfigResponse": [("config", 1, "ModelConfig", "")],
    "RepositoryIndexRequest": [("repository_name", 1, "string", ""), ("ready", 2, "bool", "")],
    "ModelIndex": [
        ("name", 1, "string", ""),
        ("version", 2, "string", ""),
        ("state", 3, "string", ""),
        ("reason", 4, "string", ""),
    ],
    "RepositoryIndexResponse": [("models", 1, "ModelIndex", "repeated")],
    "ModelStatisticsRequest": [("name", 1, "string", ""), ("version", 2, "string", "")],
    "StatisticDuration": [("count", 1, "uint64", ""), ("ns", 2, "uint64", "")],
    "InferStatistics": [
        (name, number, "StatisticDuration", "")
        for number, name in enumerate(
            (
                "success",
                "fail",
                "queue",
                "compute_input",
                "compute_infer",
                "compute_output",
                "cache_hit",
                "cache_miss",
            ),
            start=1,
        )
    ],
    "InferBatchStatistics": [
        ("batch_size", 1, "uint64", ""),
        ("compute_input", 2, "StatisticDuration", ""),
        ("compute_infer", 3, "StatisticDuration", ""),
        ("compute_output", 4, "StatisticDuration", ""),
    ],
    "ModelStatistics": [
        ("name", 1, "string", ""),
        ("version", 2, "string", ""),
        ("last_inference", 3, "uint64", ""),
        ("inference_count", 4, "uint64", ""),
        ("execution_count", 5, "uint64", ""),
        ("inference_stats", 6, "InferStatistics", ""),
        ("batch_stats", 7, "InferBatchStatistics", "repeated"),
    ],
    "ModelStatisticsResponse": [("model_stats", 1, "ModelStatistics", "repeated")],
}
# Triton's DataType enum (model_config.proto), numbered as there.
DATA_TYPES = [
    "TYPE_INVALID", "TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16", "TYPE_UINT32", "TYPE_UINT64",
    "TYPE_INT8", "TYPE_INT16", "TYPE_INT32", "TYPE_INT64", "TYPE_FP16", "TYPE_FP32",
    "TYPE_FP64", "TYPE_STRING", "TYPE_BF16",
]  # fmt: skip
# The RPCs tfship serves (others answer UNIMPLEMENTED): method -> (request, response).
METHODS = {
    "ServerLive": ("ServerLiveRequest", "ServerLiveResponse"),
    "ServerReady": ("ServerReadyRequest", "ServerReadyResponse"),
    "ModelReady": ("ModelReadyRequest", "ModelReadyResponse"),
    "ServerMetadata": ("ServerMetadataRequest", "ServerMetadataResponse"),
    "ModelMetadata": ("ModelMetadataRequest", "ModelMetadataResponse"),
    "ModelInfer": ("ModelInferRequest", "ModelInferResponse"),
    "ModelConfig": ("ModelConfigRequest", "ModelConfigResponse"),
    "RepositoryIndex": ("RepositoryIndexRequest", "RepositoryIndexResponse"),
    "ModelStatistics": ("ModelStatisticsRequest", "ModelStatisticsResponse"),
}


def _add_field(
    message: descriptor_pb2.DescriptorProto, name: str, number: int, kind: str, how: str
) -> None:
    field = message.field.add(name=name, number=number)
    if kind == _PARAMETERS:
        entry = message.nested_type.add(name=f"{name.title().replace('_', '')}Entry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
        entry.field.add(
            name="value",
            number=2,
            type=_F.TYPE_MESSAGE,
            type_name=f".{PACKAGE}.InferParameter",
            label=_F.LABEL_OPTIONAL,
        )
        field.type, field.label = _F.TYPE_MESSAGE, _F.LABEL_REPEATED
        field.type_name = f".{PACKAGE}.{message.name}.{entry.name}"
        return
    if kind in _SCALARS:
        field.type = _SCALARS[kind]
    elif kind == "DataType":
        field.type, field.type_name = _F.TYPE_ENUM, f".{PACKAGE}.DataType"
    else:
        field.type, field.type_name = _F.TYPE_MESSAGE, f".{PACKAGE}.{kind}"
    field.label = _F.LABEL_REPEATED if how == "repeated" else _F.LABEL_OPTIONAL
    if how not in ("", "repeated"):  # a oneof
        names = [o.name for o in message.oneof_decl]
        if how not in names:
            message.oneof_decl.add(name=how)
            names.append(how)
        field.oneof_index = names.index(how)


def file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(
        name="tfship/open_inference_v2.proto", package=PACKAGE, syntax="proto3"
    )
    enum = proto.enum_type.add(name="DataType")
    for number, name in enumerate(DATA_TYPES):
        enum.value.add(name=name, number=number)
    for name, fields in MESSAGES.items():
        message = proto.message_type.add(name=name)
        for field in fields:
            _add_field(message, *field)
    service = proto.service.add(name=SERVICE.rsplit(".", 1)[1])
    for method, (request, response) in METHODS.items():
        service.method.add(
            name=method, input_type=f".{PACKAGE}.{request}", output_type=f".{PACKAGE}.{response}"
        )
    return proto


@cache
def _pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_descriptor())
    return pool


def message(name: str) -> Any:
    """The class of e.g. ``ModelInferRequest``."""
    return message_factory.GetMessageClass(_pool().FindMessageTypeByName(f"{PACKAGE}.{name}"))


def service_methods() -> dict[str, tuple[Any, Any]]:
    """Method -> (request class, response class) of the served RPCs."""
    return {m: (message(request), message(response)) for m, (request, response) in METHODS.items()}
