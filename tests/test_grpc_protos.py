"""tfship's declared TF Serving and health messages against the generated code they transcribe.

The server builds these messages from service/codecs/tfserving_proto_files.py, so that it
needs neither TensorFlow nor tensorflow-serving-api. Here every declared message, field,
enum and RPC is compared with the descriptors of the installed tensorflow-serving-api,
TensorFlow and grpcio-health-checking: same full names, numbers, types, labels, oneofs and
map entries. A field of theirs that is not declared must be named in LEFT_OUT.
"""

from __future__ import annotations

from typing import Any

import pytest

from service.codecs.grpc_protos import pool
from service.codecs.tfserving_proto_files import FILES, LEFT_OUT

pytest.importorskip("tensorflow_serving")


@pytest.fixture(scope="module")
def generated() -> Any:
    """The default pool, holding the installed generated modules' descriptors."""
    from google.protobuf import descriptor_pool
    from grpc_health.v1 import health_pb2  # noqa: F401
    from tensorflow.core.protobuf import saved_model_pb2  # noqa: F401
    from tensorflow_serving.apis import (  # noqa: F401
        model_service_pb2,
        prediction_log_pb2,
        prediction_service_pb2,
    )

    return descriptor_pool.Default()


def _declared_names() -> list[str]:
    return [f"{file.package}.{name}" for file in FILES for name in file.messages]


def _shape(field: Any) -> tuple[Any, ...]:
    """What the wire and the JSON mapping depend on, for one field."""
    kind = field.message_type or field.enum_type
    entry = field.message_type is not None and field.message_type.GetOptions().map_entry
    if entry:
        entries = field.message_type.fields_by_name
        kind_name = ("map", entries["key"].type, _shape(entries["value"])[1:])
    else:
        kind_name = kind.full_name if kind is not None else None
    oneof = field.containing_oneof
    return (
        field.number,
        field.type,
        kind_name,
        field.is_repeated,
        oneof.name if oneof is not None else None,
        field.has_presence,
    )


@pytest.mark.parametrize("full_name", _declared_names())
def test_declared_message_matches_the_generated_one(generated: Any, full_name: str) -> None:
    ours = pool().FindMessageTypeByName(full_name)
    theirs = generated.FindMessageTypeByName(full_name)
    for field in ours.fields:
        assert field.name in theirs.fields_by_name, f"{full_name}.{field.name} is not theirs"
        assert _shape(field) == _shape(theirs.fields_by_name[field.name]), (
            f"{full_name}.{field.name} differs"
        )
    missing = {f"{full_name}.{f.name}" for f in theirs.fields} - {
        f"{full_name}.{f.name}" for f in ours.fields
    }
    unexplained = sorted(missing - set(LEFT_OUT))
    assert not unexplained, f"undeclared and not in LEFT_OUT: {unexplained}"
    # Nested enums carry the same values.
    for enum in ours.enum_types:
        theirs_enum = theirs.enum_types_by_name[enum.name]
        assert [(v.name, v.number) for v in enum.values] == [
            (v.name, v.number) for v in theirs_enum.values
        ]


@pytest.mark.parametrize("full_name", ["tensorflow.DataType", "tensorflow.error.Code"])
def test_top_level_enums_match(generated: Any, full_name: str) -> None:
    ours = pool().FindEnumTypeByName(full_name)
    theirs = generated.FindEnumTypeByName(full_name)
    assert [(v.name, v.number) for v in ours.values] == [(v.name, v.number) for v in theirs.values]


@pytest.mark.parametrize(
    "service",
    [
        "tensorflow.serving.PredictionService",
        "tensorflow.serving.ModelService",
        "grpc.health.v1.Health",
    ],
)
def test_services_have_the_same_rpcs(generated: Any, service: str) -> None:
    def rpcs(described: Any) -> set[tuple[str, str, str]]:
        return {
            (m.name, m.input_type.full_name, m.output_type.full_name) for m in described.methods
        }

    assert rpcs(pool().FindServiceByName(service)) == rpcs(generated.FindServiceByName(service))


def test_left_out_names_only_real_fields(generated: Any) -> None:
    for name in LEFT_OUT:
        message, _, field = name.rpartition(".")
        assert field in generated.FindMessageTypeByName(message).fields_by_name, name


def test_a_generated_request_reads_back_through_the_declarations(generated: Any) -> None:
    """Bytes written by TF Serving's own classes parse into the declared ones, field for field."""
    import numpy as np
    import tensorflow as tf
    from google.protobuf import json_format
    from tensorflow_serving.apis import predict_pb2

    from service.codecs.grpc_protos import message

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "digits"
    request.model_spec.version.value = 3
    request.model_spec.signature_name = "serving_default"
    pixels = np.arange(6, dtype=np.float32).reshape(2, 3)
    request.inputs["pixels"].CopyFrom(tf.make_tensor_proto(pixels))
    request.output_filter.append("probabilities")
    ours = message("tensorflow.serving.PredictRequest").FromString(request.SerializeToString())
    assert json_format.MessageToDict(ours) == json_format.MessageToDict(request)
    assert ours.SerializeToString(deterministic=True) == request.SerializeToString(
        deterministic=True
    )
