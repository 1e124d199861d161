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

from google.protobuf import descriptor_pool

from service.codecs.proto_declarations import (
    Field,
    ProtoFile,
    build_pool,
    message_class,
    service_classes,
)

PACKAGE = "inference"
SERVICE = f"{PACKAGE}.GRPCInferenceService"

_PARAMETERS = "map<string, InferParameter>"

# Message -> fields, as service/codecs/proto_declarations.py reads them; the one kind of
# map in the protocol is string -> InferParameter.
MESSAGES: dict[str, list[Field]] = {
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


FILE = ProtoFile(
    name="tfship/open_inference_v2.proto",
    package=PACKAGE,
    messages=MESSAGES,
    enums={"DataType": [(name, number) for number, name in enumerate(DATA_TYPES)]},
    services={SERVICE.rsplit(".", 1)[1]: METHODS},
)


@cache
def _pool() -> descriptor_pool.DescriptorPool:
    return build_pool([FILE])


def message(name: str) -> Any:
    """The class of e.g. ``ModelInferRequest``."""
    return message_class(_pool(), f"{PACKAGE}.{name}")


def service_methods() -> dict[str, tuple[Any, Any]]:
    """Method -> (request class, response class) of the served RPCs."""
    return service_classes(_pool(), SERVICE)
