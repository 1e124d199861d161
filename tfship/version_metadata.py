"""``metadata.json``: the contract between training and the server, as one typed record.

Training writes a ``VersionMetadata``; the server, ``tfship models`` and the quality gate
read one. The fields the server needs (signature, task, class names, artifacts with their
sha256, TF Serving's signature definitions) are typed and checked when the file is read;
training's account of the run (data, fit history, evaluation, parity, compression,
environment) travels in ``record``, written and shown but never needed to serve. Standard
library only: the server's ONNX path imports this without TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

FORMAT_VERSION = 1


class MetadataError(ValueError):
    """metadata.json does not hold what the contract says; the message names the key."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str  # a numpy dtype name: float32, int64, object (strings)...
    shape: tuple[int, ...]  # -1 where any size is accepted (the batch)
    # The graph tensor name TF Serving reports (SavedModels that training exported).
    tf_name: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.tf_name is not None:
            out["tf_name"] = self.tf_name
        return out

    @classmethod
    def from_json(cls, value: Any, where: str) -> TensorInfo:
        if not isinstance(value, Mapping):
            raise MetadataError(f"{where} must be an object {{name, dtype, shape}}")
        name, dtype, shape = value.get("name"), value.get("dtype"), value.get("shape")
        if not isinstance(name, str) or not name:
            raise MetadataError(f"{where}.name must be a non-empty string")
        if not isinstance(dtype, str) or not dtype:
            raise MetadataError(f"{where}.dtype must be a dtype name such as float32")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= -1 for d in shape
        ):
            raise MetadataError(f"{where}.shape must be a list of sizes (-1 for any)")
        tf_name = value.get("tf_name")
        return cls(name, dtype, tuple(shape), tf_name if isinstance(tf_name, str) else None)


@dataclass(frozen=True)
class VersionMetadata:
    name: str = ""
    version: int | None = None
    created: str | None = None
    task: str = "unknown"  # "classification", "regression" or "unknown"
    signature_name: str = "serving_default"
    inputs: tuple[TensorInfo, ...] = ()
    outputs: tuple[TensorInfo, ...] = ()
    class_names: tuple[str, ...] = ()
    # Artifact key ("savedmodel", "onnx", "onnx.int8"...) -> {"format", "files": {relative
    # path: sha256}, sizes...}; the server hashes the files of the one it loads.
    artifacts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # The SavedModel's SignatureDefMap as JSON, for TF Serving's metadata API.
    tf_serving_signature_def: Mapping[str, Any] | None = None
    # Test-split metrics per artifact, as the quality gate judged them.
    metrics: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Training's account of the run: every other key of the file, in its order.
    record: Mapping[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def files(self, artifact: str) -> dict[str, str]:
        """The files of one artifact and their sha256; {} when it has none."""
        return dict(self.artifacts.get(artifact, {}).get("files", {}))

    def published(self, version: int, created: str, **record: Any) -> VersionMetadata:
        """This record as published: its version number and time, and ``record`` entries
        merged one level deep into the entries of the same name."""
        merged = dict(self.record)
        for key, value in record.items():
            merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
        return replace(self, version=version, created=created, record=merged)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format_version": self.format_version, "name": self.name}
        if self.version is not None:
            out["version"] = self.version
        if self.created is not None:
            out["created"] = self.created
        out.update(
            task=self.task,
            signature_name=self.signature_name,
            inputs=[t.to_json() for t in self.inputs],
            outputs=[t.to_json() for t in self.outputs],
            class_names=list(self.class_names),
        )
        out.update(self.record)
        out["metrics"] = {k: dict(v) for k, v in self.metrics.items()}
        out["artifacts"] = {k: dict(v) for k, v in self.artifacts.items()}
        if self.tf_serving_signature_def is not None:
            out["tf_serving_signature_def"] = dict(self.tf_serving_signature_def)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VersionMetadata:
        """Check the contract's keys; MetadataError names the first that is wrong."""
        fmt = data.get("format_version")
        if fmt != FORMAT_VERSION:
            raise MetadataError(
                f"has format_version {fmt!r}; this tfship reads format_version {FORMAT_VERSION}"
            )
        typed = {f.name for f in fields(cls)} - {"record"}
        record = {k: v for k, v in data.items() if k not in typed}
        return cls(
            name=_typed(data, "name", str, ""),
            version=_typed(data, "version", int, None),
            created=_typed(data, "created", str, None),
            task=_typed(data, "task", str, "unknown"),
            signature_name=_typed(data, "signature_name", str, "serving_default"),
            inputs=_tensors(data, "inputs"),
            outputs=_tensors(data, "outputs"),
            class_names=tuple(str(c) for c in _typed(data, "class_names", list, [])),
            artifacts=_artifacts(data),
            tf_serving_signature_def=_typed(data, "tf_serving_signature_def", dict, None),
            metrics=_typed(data, "metrics", dict, {}),
            record=record,
        )


def _typed(data: Mapping[str, Any], key: str, kind: type, default: Any) -> Any:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MetadataError(f"'{key}' must be {_KIND_NAMES[kind]}, got {type(value).__name__}")
    return value


_KIND_NAMES = {str: "a string", int: "an integer", list: "a list", dict: "an object"}


def _tensors(data: Mapping[str, Any], key: str) -> tuple[TensorInfo, ...]:
    return tuple(
        TensorInfo.from_json(value, f"{key}[{index}]")
        for index, value in enumerate(_typed(data, key, list, []))
    )


def _artifacts(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    artifacts = _typed(data, "artifacts", dict, {})
    for key, entry in artifacts.items():
        files = entry.get("files") if isinstance(entry, dict) else None
        if not isinstance(files, dict) or not all(
            isinstance(path, str) and isinstance(digest, str) for path, digest in files.items()
        ):
            raise MetadataError(f"artifacts.{key}.files must map file paths to sha256 digests")
    return artifacts
