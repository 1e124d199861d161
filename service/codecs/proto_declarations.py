"""Protobuf files declared as Python data, built into a private descriptor pool.

tfship speaks gRPC protocols whose messages it does not want to import from their usual
packages: TF Serving's generated code imports TensorFlow (1.9 GB, 5 s per worker), and no
package ships the Open Inference Protocol's messages for servers. On the wire only each
field's number and type matter, so a declaration that keeps them, under the names of the
specification (clients unpack ``google.protobuf.Any`` by full name), is the same protocol.

A declaration is a ``ProtoFile``: messages as lists of fields, enums as (name, number)
pairs, services as method -> (request, response). A field is ``(name, number, kind, how)``:

- ``kind``: a scalar (``"int64"``...), ``"map<K, V>"``, or a message or enum name, relative
  to the file's package (``"TensorShapeProto.Dim"``) or absolute with a leading dot
  (``".google.protobuf.Any"``);
- ``how``: ``""`` (singular), ``"repeated"``, ``"optional"`` (proto3 explicit presence), or
  the name of the oneof the field belongs to.

Nested messages and enums are named with dots (``"ModelVersionStatus.State"``); a parent
comes before its children. ``google.protobuf`` well-known types come from protobuf itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import (
    any_pb2,
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    wrappers_pb2,
)

Field = tuple[str, int, str, str]

_F = descriptor_pb2.FieldDescriptorProto
SCALARS = {
    "bool": _F.TYPE_BOOL,
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
    "int32": _F.TYPE_INT32,
    "int64": _F.TYPE_INT64,
    "sint64": _F.TYPE_SINT64,
    "uint32": _F.TYPE_UINT32,
    "uint64": _F.TYPE_UINT64,
    "float": _F.TYPE_FLOAT,
    "double": _F.TYPE_DOUBLE,
}
# Well-known types a declaration may name, and protobuf's own file that declares each.
_WELL_KNOWN = {
    ".google.protobuf.Any": any_pb2.DESCRIPTOR,
    ".google.protobuf.Int64Value": wrappers_pb2.DESCRIPTOR,
}


@dataclass(frozen=True)
class ProtoFile:
    name: str
    package: str
    messages: Mapping[str, Sequence[Field]]
    enums: Mapping[str, Sequence[tuple[str, int]]] = field(default_factory=dict)
    services: Mapping[str, Mapping[str, tuple[str, str]]] = field(default_factory=dict)

    def full(self, name: str) -> str:
        """A kind or a declared name as an absolute type name (leading dot)."""
        return name if name.startswith(".") else f".{self.package}.{name}"


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


class _Builder:
    def __init__(self, files: Sequence[ProtoFile]) -> None:
        self.files = files
        self.enums = {f.full(name) for f in files for name in f.enums}
        self.file_of = {f.full(name): f.name for f in files for name in (*f.messages, *f.enums)}
        self.file_of |= {name: described.name for name, described in _WELL_KNOWN.items()}

    def _type(self, proto_field: Any, kind: str, file: ProtoFile) -> set[str]:
        """Set a field's type from its kind; returns the files it needs."""
        if kind in SCALARS:
            proto_field.type = SCALARS[kind]
            return set()
        full = file.full(kind)
        if full not in self.file_of:
            raise ValueError(f"{file.name}: unknown type {kind!r}")
        proto_field.type = _F.TYPE_ENUM if full in self.enums else _F.TYPE_MESSAGE
        proto_field.type_name = full
        return {self.file_of[full]}

    def _add_field(
        self, message: Any, full_name: str, declared: Field, file: ProtoFile
    ) -> set[str]:
        name, number, kind, how = declared
        proto_field = message.field.add(name=name, number=number)
        if kind.startswith("map<"):
            key, value = (part.strip() for part in kind[4:-1].split(","))
            entry = message.nested_type.add(name=f"{_camel(name)}Entry")
            entry.options.map_entry = True
            entry.field.add(name="key", number=1, type=SCALARS[key], label=_F.LABEL_OPTIONAL)
            value_field = entry.field.add(name="value", number=2, label=_F.LABEL_OPTIONAL)
            needs = self._type(value_field, value, file)
            proto_field.type, proto_field.label = _F.TYPE_MESSAGE, _F.LABEL_REPEATED
            proto_field.type_name = f".{full_name}.{entry.name}"
            return needs
        needs = self._type(proto_field, kind, file)
        proto_field.label = _F.LABEL_REPEATED if how == "repeated" else _F.LABEL_OPTIONAL
        if how not in ("", "repeated"):
            oneof = f"_{name}" if how == "optional" else how
            names = [o.name for o in message.oneof_decl]
            if oneof not in names:
                message.oneof_decl.add(name=oneof)
                names.append(oneof)
            proto_field.oneof_index = names.index(oneof)
            proto_field.proto3_optional = how == "optional"
        return needs

    def file_descriptor(self, file: ProtoFile) -> descriptor_pb2.FileDescriptorProto:
        proto = descriptor_pb2.FileDescriptorProto(
            name=file.name, package=file.package, syntax="proto3"
        )
        containers: dict[str, Any] = {}  # declared dotted name -> its DescriptorProto

        def container(dotted: str) -> tuple[Any, str]:
            """Where a dotted name's type goes (the file or its parent) and its last part."""
            parent, _, last = dotted.rpartition(".")
            return (containers[parent] if parent else proto), last

        needs: set[str] = set()
        for dotted in file.messages:
            where, last = container(dotted)
            containers[dotted] = (where.message_type if where is proto else where.nested_type).add(
                name=last
            )
        for dotted, values in file.enums.items():
            where, last = container(dotted)
            enum = where.enum_type.add(name=last)
            for name, number in values:
                enum.value.add(name=name, number=number)
        for dotted, fields in file.messages.items():
            for declared in fields:
                needs |= self._add_field(
                    containers[dotted], f"{file.package}.{dotted}", declared, file
                )
        for service, methods in file.services.items():
            described = proto.service.add(name=service)
            for method, (request, response) in methods.items():
                described.method.add(
                    name=method, input_type=file.full(request), output_type=file.full(response)
                )
                needs |= {self.file_of[file.full(request)], self.file_of[file.full(response)]}
        needs.discard(file.name)
        proto.dependency.extend(sorted(needs))
        return proto

    def pool(self) -> descriptor_pool.DescriptorPool:
        pool = descriptor_pool.DescriptorPool()
        for described in {d.name: d for d in _WELL_KNOWN.values()}.values():
            pool.Add(descriptor_pb2.FileDescriptorProto.FromString(described.serialized_pb))
        for file in self.files:  # in dependency order, as declared
            pool.Add(self.file_descriptor(file))
        return pool


def build_pool(files: Iterable[ProtoFile]) -> descriptor_pool.DescriptorPool:
    """A private pool holding the declared files (dependencies first, as listed)."""
    return _Builder(list(files)).pool()


def message_class(pool: descriptor_pool.DescriptorPool, full_name: str) -> Any:
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))


def enum_numbers(pool: descriptor_pool.DescriptorPool, full_name: str) -> dict[str, int]:
    return {value.name: value.number for value in pool.FindEnumTypeByName(full_name).values}


def service_classes(
    pool: descriptor_pool.DescriptorPool, full_name: str
) -> dict[str, tuple[Any, Any]]:
    """Method -> (request class, response class) of a declared service."""
    return {
        method.name: (
            message_factory.GetMessageClass(method.input_type),
            message_factory.GetMessageClass(method.output_type),
        )
        for method in pool.FindServiceByName(full_name).methods
    }
