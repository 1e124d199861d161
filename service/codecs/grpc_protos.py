"""TF Serving's and gRPC health's message classes, from tfship's own declarations.

The classes come from a private descriptor pool built from
service/codecs/tfserving_proto_files.py, so a server installed without TensorFlow and
tensorflow-serving-api speaks the same protocol, and a process that also imports their
generated code (the SavedModel runtime, a test's client) sees no clash in the default pool.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from google.protobuf import descriptor_pool

from service.codecs.proto_declarations import (
    build_pool,
    enum_numbers,
    message_class,
    service_classes,
)
from service.codecs.tfserving_proto_files import FILES


@cache
def pool() -> descriptor_pool.DescriptorPool:
    return build_pool(FILES)


def message(full_name: str) -> Any:
    """The message class for e.g. ``tensorflow.serving.PredictRequest``."""
    return message_class(pool(), full_name)


def enum_values(full_name: str) -> dict[str, int]:
    """Name -> number of an enum, e.g. ``tensorflow.DataType``."""
    return enum_numbers(pool(), full_name)


def service_methods(full_name: str) -> dict[str, tuple[Any, Any]]:
    """Method name -> (request class, response class) of a gRPC service."""
    return service_classes(pool(), full_name)
