"""TF Serving's gRPC protocol and the standard health service, declared field by field.

Transcribed from the ``.proto`` files of TensorFlow (``tensorflow/core/framework/tensor.proto``,
``tensor_shape.proto``, ``types.proto``, ``resource_handle.proto``; ``core/example/``;
``core/protobuf/meta_graph.proto``, ``struct.proto``, ``saved_model.proto``), TF Serving
(``tensorflow_serving/apis/*.proto``) and gRPC (``grpc/health/v1/health.proto``), with their
numbers and full names, so that the server needs neither TensorFlow nor
tensorflow-serving-api installed (service/codecs/proto_declarations.py says why).
tests/test_grpc_protos.py compares every declaration with the installed generated code.

``LEFT_OUT`` names the fields of those files not declared, with why; a message holding one
still parses (protobuf keeps unknown fields aside), it is only not read.
"""

from __future__ import annotations

from service.codecs.proto_declarations import ProtoFile

# tensorflow.DataType: numbers 0-33 in this order; each type's reference type is +100.
_DATA_TYPES = [
    "INVALID", "FLOAT", "DOUBLE", "INT32", "UINT8", "INT16", "INT8", "STRING", "COMPLEX64",
    "INT64", "BOOL", "QINT8", "QUINT8", "QINT32", "BFLOAT16", "QINT16", "QUINT16", "UINT16",
    "COMPLEX128", "HALF", "RESOURCE", "VARIANT", "UINT32", "UINT64", "FLOAT8_E5M2",
    "FLOAT8_E4M3FN", "FLOAT8_E4M3FNUZ", "FLOAT8_E4M3B11FNUZ", "FLOAT8_E5M2FNUZ", "INT4", "UINT4",
    "INT2", "UINT2", "FLOAT4_E2M1FN",
]  # fmt: skip
DATA_TYPES = [(f"DT_{name}", number) for number, name in enumerate(_DATA_TYPES)] + [
    (f"DT_{name}_REF", number + 100) for number, name in enumerate(_DATA_TYPES) if number
]

_TYPE_SPEC_CLASSES = [
    ("UNKNOWN", 0), ("SPARSE_TENSOR_SPEC", 1), ("INDEXED_SLICES_SPEC", 2),
    ("RAGGED_TENSOR_SPEC", 3), ("TENSOR_ARRAY_SPEC", 4), ("DATA_DATASET_SPEC", 5),
    ("DATA_ITERATOR_SPEC", 6), ("OPTIONAL_SPEC", 7), ("PER_REPLICA_SPEC", 8),
    ("VARIABLE_SPEC", 9), ("ROW_PARTITION_SPEC", 10), ("REGISTERED_TYPE_SPEC", 12),
    ("EXTENSION_TYPE_SPEC", 13),
]  # fmt: skip

_STRUCTURED = [
    ("none_value", 1, "NoneValue"), ("float64_value", 11, "double"),
    ("int64_value", 12, "sint64"), ("string_value", 13, "string"), ("bool_value", 14, "bool"),
    ("tensor_shape_value", 31, "TensorShapeProto"), ("tensor_dtype_value", 32, "DataType"),
    ("tensor_spec_value", 33, "TensorSpecProto"), ("type_spec_value", 34, "TypeSpecProto"),
    ("bounded_tensor_spec_value", 35, "BoundedTensorSpecProto"),
    ("list_value", 51, "ListValue"), ("tuple_value", 52, "TupleValue"),
    ("dict_value", 53, "DictValue"), ("named_tuple_value", 54, "NamedTupleValue"),
    ("tensor_value", 55, "TensorProto"), ("numpy_value", 56, "TensorProto"),
]  # fmt: skip

TENSORFLOW = ProtoFile(
    name="tfship/tensorflow.proto",
    package="tensorflow",
    enums={"DataType": DATA_TYPES, "TypeSpecProto.TypeSpecClass": _TYPE_SPEC_CLASSES},
    messages={
        # tensor_shape.proto, tensor.proto, resource_handle.proto
        "TensorShapeProto": [
            ("dim", 2, "TensorShapeProto.Dim", "repeated"),
            ("unknown_rank", 3, "bool", ""),
        ],
        "TensorShapeProto.Dim": [("size", 1, "int64", ""), ("name", 2, "string", "")],
        "TensorProto": [
            ("dtype", 1, "DataType", ""),
            ("tensor_shape", 2, "TensorShapeProto", ""),
            ("version_number", 3, "int32", ""),
            ("tensor_content", 4, "bytes", ""),
            ("half_val", 13, "int32", "repeated"),
            ("float_val", 5, "float", "repeated"),
            ("double_val", 6, "double", "repeated"),
            ("int_val", 7, "int32", "repeated"),
            ("string_val", 8, "bytes", "repeated"),
            ("scomplex_val", 9, "float", "repeated"),
            ("int64_val", 10, "int64", "repeated"),
            ("bool_val", 11, "bool", "repeated"),
            ("dcomplex_val", 12, "double", "repeated"),
            ("resource_handle_val", 14, "ResourceHandleProto", "repeated"),
            ("variant_val", 15, "VariantTensorDataProto", "repeated"),
            ("uint32_val", 16, "uint32", "repeated"),
            ("uint64_val", 17, "uint64", "repeated"),
            ("float8_val", 18, "bytes", ""),
        ],
        "VariantTensorDataProto": [
            ("type_name", 1, "string", ""),
            ("metadata", 2, "bytes", ""),
            ("tensors", 3, "TensorProto", "repeated"),
        ],
        "ResourceHandleProto": [
            ("device", 1, "string", ""),
            ("container", 2, "string", ""),
            ("name", 3, "string", ""),
            ("hash_code", 4, "uint64", ""),
            ("maybe_type_name", 5, "string", ""),
            ("dtypes_and_shapes", 6, "ResourceHandleProto.DtypeAndShape", "repeated"),
        ],
        "ResourceHandleProto.DtypeAndShape": [
            ("dtype", 1, "DataType", ""),
            ("shape", 2, "TensorShapeProto", ""),
        ],
        # example/feature.proto, example/example.proto: Classify and Regress take tf.Examples.
        "Features": [("feature", 1, "map<string, Feature>", "")],
        "Feature": [
            ("bytes_list", 1, "BytesList", "kind"),
            ("float_list", 2, "FloatList", "kind"),
            ("int64_list", 3, "Int64List", "kind"),
        ],
        "BytesList": [("value", 1, "bytes", "repeated")],
        "FloatList": [("value", 1, "float", "repeated")],
        "Int64List": [("value", 1, "int64", "repeated")],
        "Example": [("features", 1, "Features", "")],
        # protobuf/struct.proto: what a composite tensor's TensorInfo describes itself with.
        "StructuredValue": [(name, number, kind, "kind") for name, number, kind in _STRUCTURED],
        "NoneValue": [],
        "ListValue": [("values", 1, "StructuredValue", "repeated")],
        "TupleValue": [("values", 1, "StructuredValue", "repeated")],
        "DictValue": [("fields", 1, "map<string, StructuredValue>", "")],
        "PairValue": [("key", 1, "string", ""), ("value", 2, "StructuredValue", "")],
        "NamedTupleValue": [("name", 1, "string", ""), ("values", 2, "PairValue", "repeated")],
        "TensorSpecProto": [
            ("name", 1, "string", ""),
            ("shape", 2, "TensorShapeProto", ""),
            ("dtype", 3, "DataType", ""),
        ],
        "BoundedTensorSpecProto": [
            ("name", 1, "string", ""),
            ("shape", 2, "TensorShapeProto", ""),
            ("dtype", 3, "DataType", ""),
            ("minimum", 4, "TensorProto", ""),
            ("maximum", 5, "TensorProto", ""),
        ],
        "TypeSpecProto": [
            ("type_spec_class", 1, "TypeSpecProto.TypeSpecClass", ""),
            ("type_state", 2, "StructuredValue", ""),
            ("type_spec_class_name", 3, "string", ""),
            ("num_flat_components", 4, "int32", ""),
        ],
        # protobuf/meta_graph.proto: signatures, as GetModelMetadata answers them.
        "TensorInfo": [
            ("name", 1, "string", "encoding"),
            ("coo_sparse", 4, "TensorInfo.CooSparse", "encoding"),
            ("composite_tensor", 5, "TensorInfo.CompositeTensor", "encoding"),
            ("dtype", 2, "DataType", ""),
            ("tensor_shape", 3, "TensorShapeProto", ""),
        ],
        "TensorInfo.CooSparse": [
            ("values_tensor_name", 1, "string", ""),
            ("indices_tensor_name", 2, "string", ""),
            ("dense_shape_tensor_name", 3, "string", ""),
        ],
        "TensorInfo.CompositeTensor": [
            ("type_spec", 1, "TypeSpecProto", ""),
            ("components", 2, "TensorInfo", "repeated"),
        ],
        "SignatureDef": [
            ("inputs", 1, "map<string, TensorInfo>", ""),
            ("outputs", 2, "map<string, TensorInfo>", ""),
            ("method_name", 3, "string", ""),
            ("defaults", 4, "map<string, TensorProto>", ""),
        ],
        # protobuf/saved_model.proto: enough of saved_model.pb to read its signatures.
        "SavedModel": [
            ("saved_model_schema_version", 1, "int64", ""),
            ("meta_graphs", 2, "MetaGraphDef", "repeated"),
        ],
        "MetaGraphDef": [
            ("meta_info_def", 1, "MetaGraphDef.MetaInfoDef", ""),
            ("signature_def", 5, "map<string, SignatureDef>", ""),
        ],
        "MetaGraphDef.MetaInfoDef": [
            ("meta_graph_version", 1, "string", ""),
            ("tags", 4, "string", "repeated"),
            ("tensorflow_version", 5, "string", ""),
            ("tensorflow_git_version", 6, "string", ""),
        ],
    },
)

_ERROR_CODES = [
    ("OK", 0), ("CANCELLED", 1), ("UNKNOWN", 2), ("INVALID_ARGUMENT", 3),
    ("DEADLINE_EXCEEDED", 4), ("NOT_FOUND", 5), ("ALREADY_EXISTS", 6),
    ("PERMISSION_DENIED", 7), ("UNAUTHENTICATED", 16), ("RESOURCE_EXHAUSTED", 8),
    ("FAILED_PRECONDITION", 9), ("ABORTED", 10), ("OUT_OF_RANGE", 11),
    ("UNIMPLEMENTED", 12), ("INTERNAL", 13), ("UNAVAILABLE", 14), ("DATA_LOSS", 15),
    ("DO_NOT_USE_RESERVED_FOR_FUTURE_EXPANSION_USE_DEFAULT_IN_SWITCH_INSTEAD_", 20),
]  # fmt: skip

TENSORFLOW_ERROR = ProtoFile(
    name="tfship/tensorflow_error.proto",
    package="tensorflow.error",
    messages={},
    enums={"Code": _ERROR_CODES},
)

_VERSION_STATES = [
    ("UNKNOWN", 0), ("START", 10), ("LOADING", 20), ("AVAILABLE", 30),
    ("UNLOADING", 40), ("END", 50),
]  # fmt: skip

_TF = ".tensorflow."
TF_SERVING = ProtoFile(
    name="tfship/tensorflow_serving.proto",
    package="tensorflow.serving",
    enums={"ModelVersionStatus.State": _VERSION_STATES},
    messages={
        # model.proto
        "ModelSpec": [
            ("name", 1, "string", ""),
            ("version", 2, ".google.protobuf.Int64Value", "version_choice"),
            ("version_label", 4, "string", "version_choice"),
            ("signature_name", 3, "string", ""),
        ],
        # predict.proto
        "PredictRequest": [
            ("model_spec", 1, "ModelSpec", ""),
            ("inputs", 2, f"map<string, {_TF}TensorProto>", ""),
            ("output_filter", 3, "string", "repeated"),
        ],
        "PredictResponse": [
            ("model_spec", 2, "ModelSpec", ""),
            ("outputs", 1, f"map<string, {_TF}TensorProto>", ""),
        ],
        # input.proto, classification.proto, regression.proto
        "ExampleList": [("examples", 1, f"{_TF}Example", "repeated")],
        "ExampleListWithContext": [
            ("examples", 1, f"{_TF}Example", "repeated"),
            ("context", 2, f"{_TF}Example", ""),
        ],
        "Input": [
            ("example_list", 1, "ExampleList", "kind"),
            ("example_list_with_context", 2, "ExampleListWithContext", "kind"),
        ],
        "Class": [("label", 1, "string", ""), ("score", 2, "float", "")],
        "Classifications": [("classes", 1, "Class", "repeated")],
        "ClassificationResult": [("classifications", 1, "Classifications", "repeated")],
        "ClassificationRequest": [("model_spec", 1, "ModelSpec", ""), ("input", 2, "Input", "")],
        "ClassificationResponse": [
            ("model_spec", 2, "ModelSpec", ""),
            ("result", 1, "ClassificationResult", ""),
        ],
        "Regression": [("value", 1, "float", "")],
        "RegressionResult": [("regressions", 1, "Regression", "repeated")],
        "RegressionRequest": [("model_spec", 1, "ModelSpec", ""), ("input", 2, "Input", "")],
        "RegressionResponse": [
            ("model_spec", 2, "ModelSpec", ""),
            ("result", 1, "RegressionResult", ""),
        ],
        # inference.proto (MultiInference answers UNIMPLEMENTED; warm-up files may hold it)
        "InferenceTask": [("model_spec", 1, "ModelSpec", ""), ("method_name", 2, "string", "")],
        "InferenceResult": [
            ("model_spec", 1, "ModelSpec", ""),
            ("classification_result", 2, "ClassificationResult", "result"),
            ("regression_result", 3, "RegressionResult", "result"),
        ],
        "MultiInferenceRequest": [
            ("tasks", 1, "InferenceTask", "repeated"),
            ("input", 2, "Input", ""),
        ],
        "MultiInferenceResponse": [("results", 1, "InferenceResult", "repeated")],
        # get_model_metadata.proto
        "SignatureDefMap": [("signature_def", 1, f"map<string, {_TF}SignatureDef>", "")],
        "GetModelMetadataRequest": [
            ("model_spec", 1, "ModelSpec", ""),
            ("metadata_field", 2, "string", "repeated"),
        ],
        "GetModelMetadataResponse": [
            ("model_spec", 1, "ModelSpec", ""),
            ("metadata", 2, "map<string, .google.protobuf.Any>", ""),
        ],
        # status.proto, get_model_status.proto
        "StatusProto": [
            ("error_code", 1, ".tensorflow.error.Code", ""),
            ("error_message", 2, "string", ""),
        ],
        "ModelVersionStatus": [
            ("version", 1, "int64", ""),
            ("state", 2, "ModelVersionStatus.State", ""),
            ("status", 3, "StatusProto", ""),
        ],
        "GetModelStatusRequest": [("model_spec", 1, "ModelSpec", "")],
        "GetModelStatusResponse": [
            ("model_version_status", 1, "ModelVersionStatus", "repeated"),
        ],
        # model_management.proto (HandleReloadConfigRequest answers UNIMPLEMENTED)
        "ReloadConfigRequest": [("metric_names", 2, "string", "repeated")],
        "Metric": [
            ("name", 1, "string", ""),
            ("int64_value_increase", 2, "int64", "value_increase"),
        ],
        "ReloadConfigResponse": [
            ("status", 1, "StatusProto", ""),
            ("metric", 2, "Metric", "repeated"),
        ],
        # prediction_log.proto: the records of assets.extra/tf_serving_warmup_requests.
        "ClassifyLog": [
            ("request", 1, "ClassificationRequest", ""),
            ("response", 2, "ClassificationResponse", ""),
        ],
        "RegressLog": [
            ("request", 1, "RegressionRequest", ""),
            ("response", 2, "RegressionResponse", ""),
        ],
        "PredictLog": [
            ("request", 1, "PredictRequest", ""),
            ("response", 2, "PredictResponse", ""),
        ],
        "MultiInferenceLog": [
            ("request", 1, "MultiInferenceRequest", ""),
            ("response", 2, "MultiInferenceResponse", ""),
        ],
        "PredictionLog": [
            ("classify_log", 2, "ClassifyLog", "log_type"),
            ("regress_log", 3, "RegressLog", "log_type"),
            ("predict_log", 6, "PredictLog", "log_type"),
            ("multi_inference_log", 4, "MultiInferenceLog", "log_type"),
        ],
    },
    services={
        "PredictionService": {
            "Classify": ("ClassificationRequest", "ClassificationResponse"),
            "Regress": ("RegressionRequest", "RegressionResponse"),
            "Predict": ("PredictRequest", "PredictResponse"),
            "MultiInference": ("MultiInferenceRequest", "MultiInferenceResponse"),
            "GetModelMetadata": ("GetModelMetadataRequest", "GetModelMetadataResponse"),
        },
        "ModelService": {
            "GetModelStatus": ("GetModelStatusRequest", "GetModelStatusResponse"),
            "HandleReloadConfigRequest": ("ReloadConfigRequest", "ReloadConfigResponse"),
        },
    },
)

_SERVING_STATUSES = [
    ("UNKNOWN", 0), ("SERVING", 1), ("NOT_SERVING", 2), ("SERVICE_UNKNOWN", 3),
]  # fmt: skip

HEALTH = ProtoFile(
    name="tfship/grpc_health.proto",
    package="grpc.health.v1",
    enums={"HealthCheckResponse.ServingStatus": _SERVING_STATUSES},
    messages={
        "HealthCheckRequest": [("service", 1, "string", "")],
        "HealthCheckResponse": [("status", 1, "HealthCheckResponse.ServingStatus", "")],
        "HealthListRequest": [],
        "HealthListResponse": [("statuses", 1, "map<string, HealthCheckResponse>", "")],
    },
    services={
        "Health": {
            "Check": ("HealthCheckRequest", "HealthCheckResponse"),
            "List": ("HealthListRequest", "HealthListResponse"),
            "Watch": ("HealthCheckRequest", "HealthCheckResponse"),
        }
    },
)

FILES = (TENSORFLOW, TENSORFLOW_ERROR, TF_SERVING, HEALTH)

# Fields of the real files not declared here: full field name -> why.
LEFT_OUT = {
    "tensorflow.serving.PredictRequest.predict_streamed_options": "streamed Predict, not served",
    "tensorflow.serving.PredictRequest.client_id": "LLM serving options, not read",
    "tensorflow.serving.PredictRequest.request_options": "LLM serving options, not read",
    "tensorflow.serving.PredictionLog.log_metadata": "request-logging context, not read",
    "tensorflow.serving.PredictionLog.predict_streamed_log": "streamed Predict, not served",
    "tensorflow.serving.PredictionLog.session_run_log": "SessionRun, not served (needs all of "
    "config.proto and graph.proto)",
    "tensorflow.serving.ReloadConfigRequest.config": "HandleReloadConfigRequest answers "
    "UNIMPLEMENTED (needs all of model_server_config.proto)",
    "tensorflow.MetaGraphDef.graph_def": "the graph: only the signatures are read",
    "tensorflow.MetaGraphDef.saver_def": "only the signatures are read",
    "tensorflow.MetaGraphDef.collection_def": "only the signatures are read",
    "tensorflow.MetaGraphDef.asset_file_def": "only the signatures are read",
    "tensorflow.MetaGraphDef.object_graph_def": "only the signatures are read",
    "tensorflow.MetaGraphDef.MetaInfoDef.stripped_op_list": "only the tags are read",
    "tensorflow.MetaGraphDef.MetaInfoDef.any_info": "only the tags are read",
    "tensorflow.MetaGraphDef.MetaInfoDef.stripped_default_attrs": "only the tags are read",
    "tensorflow.MetaGraphDef.MetaInfoDef.function_aliases": "only the tags are read",
}
