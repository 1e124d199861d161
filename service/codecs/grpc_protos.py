"""TF Serving's protobuf messages, without importing TensorFlow.

The generated modules of tensorflow-serving-api (``tensorflow_serving.apis.*_pb2``) import
``tensorflow.core.framework.*_pb2``, and importing any module under ``tensorflow`` runs
``tensorflow/__init__.py``: all of TensorFlow, about 5 s and 600 MB per worker. The
ONNX-only server must not pay that.

The messages themselves are only file descriptors. Each generated module holds its
``.proto`` file as one serialized ``FileDescriptorProto`` (the bytes literal passed to
``AddSerializedFile``). This module reads those literals from the installed files with
``ast`` (nothing is executed), adds them with their dependencies to a private descriptor
pool, and builds the message classes from it. The wire format is therefore exactly the one
of the installed tensorflow-serving-api and tensorflow packages, and a process that also
imports TensorFlow (the SavedModel runtime, or a test's client) sees no clash in the
default pool.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from functools import cache
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

# The top-level packages whose generated modules hold the descriptors we need.
_PACKAGES = ("tensorflow_serving", "tensorflow", "grpc_health")


class ProtoLoadError(RuntimeError):
    """A descriptor could not be found or read in the installed packages."""


def _package_root(package: str) -> Path:
    # find_spec on a top-level name locates the package without executing its __init__.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ProtoLoadError(f"package {package!r} is not installed (pip install tfship)")
    return Path(next(iter(spec.submodule_search_locations))).parent


def _module_file(module: str) -> Path:
    package = module.split(".", 1)[0]
    if package not in _PACKAGES:
        raise ProtoLoadError(f"no generated module expected in package {package!r}")
    return _package_root(package) / (module.replace(".", "/") + ".py")


def _read_module(module: str) -> tuple[bytes, list[str]]:
    """A generated module's serialized FileDescriptorProto and the ``*_pb2`` modules it imports.

    The imports are the descriptor's dependencies, named as modules: a ``.proto`` path does
    not always match where its module is installed (``xla/tsl/protobuf/error_codes.proto``
    lives in ``tensorflow.compiler.xla.tsl.protobuf``).
    """
    source = _module_file(module)
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"), str(source))
    except OSError as exc:
        raise ProtoLoadError(f"cannot read {source}: {exc}") from None
    serialized: bytes | None = None
    imports: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imports += [
                f"{node.module}.{alias.name}" for alias in node.names if alias.name.endswith("_pb2")
            ]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "AddSerializedFile"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, bytes)
        ):
            serialized = node.args[0].value
    if serialized is None:
        raise ProtoLoadError(f"{source} holds no serialized descriptor")
    return serialized, imports


class _Loader:
    def __init__(self) -> None:
        self.pool = descriptor_pool.DescriptorPool()
        self._added: set[str] = set()

    def add(self, module: str) -> None:
        if module in self._added:
            return
        self._added.add(module)
        if module.startswith("google.protobuf."):
            # Well-known types: protobuf's own modules, which import nothing heavy.
            serialized = importlib.import_module(module).DESCRIPTOR.serialized_pb
            dependencies: list[str] = []
        else:
            serialized, dependencies = _read_module(module)
        for dependency in dependencies:
            self.add(dependency)
        self.pool.Add(descriptor_pb2.FileDescriptorProto.FromString(serialized))


# Every generated module whose messages the gRPC services (TF Serving's and health), the
# warm-up reader and the reader of foreign SavedModels' signatures use; their imports are
# followed.
_ROOTS = (
    "tensorflow_serving.apis.prediction_service_pb2",
    "tensorflow_serving.apis.model_service_pb2",
    "tensorflow_serving.apis.prediction_log_pb2",
    "tensorflow.core.protobuf.saved_model_pb2",
    "grpc_health.v1.health_pb2",
)


@cache
def _pool() -> descriptor_pool.DescriptorPool:
    loader = _Loader()
    for root in _ROOTS:
        loader.add(root)
    return loader.pool


def message(full_name: str) -> Any:
    """The message class for e.g. ``tensorflow.serving.PredictRequest``."""
    return message_factory.GetMessageClass(_pool().FindMessageTypeByName(full_name))


def enum_values(full_name: str) -> dict[str, int]:
    """Name -> number of an enum, e.g. ``tensorflow.DataType``."""
    enum = _pool().FindEnumTypeByName(full_name)
    return {value.name: value.number for value in enum.values}


def service_methods(full_name: str) -> dict[str, tuple[Any, Any]]:
    """Method name -> (request class, response class) of a gRPC service."""
    service = _pool().FindServiceByName(full_name)
    return {
        method.name: (
            message_factory.GetMessageClass(method.input_type),
            message_factory.GetMessageClass(method.output_type),
        )
        for method in service.methods
    }
