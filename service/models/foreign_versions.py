"""Versions tfship did not publish: what the server needs, read from the artifact itself.

A TF Serving or Triton repository holds ``<name>/<version>/saved_model.pb`` or
``<name>/<version>/model.onnx`` and no ``metadata.json``. Such a version is served
*unverified*: nothing records what its files should hash to, so nothing is checked. Its
signature comes from the artifact: for ONNX from the graph, when the runtime opens it (see
runtimes/onnx.py); for a SavedModel every SignatureDef is read from ``saved_model.pb`` with
the descriptor pool the gRPC service uses, so no TensorFlow is imported to describe it.
Task and class names are unknown: predict works, classify and regress say why not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service.models.model_view import NUMPY_OF_TF_DTYPE
from tfship.repository import (
    SAVED_MODEL_FILE,
    ArtifactMissing,
    IntegrityError,
    RepositoryError,
    artifact_key,
    foreign_artifacts,
    onnx_file,
)
from tfship.version_metadata import TensorInfo, VersionMetadata

SERVING_DEFAULT = "serving_default"
# The MetaGraph TF Serving loads by default.
_SERVE_TAG = "serve"


def foreign_metadata(
    folder: Path, name: str, version: int, runtime: str, variant: str = ""
) -> VersionMetadata:
    """What the runtime ``runtime`` needs to serve a version without metadata.json.

    Raises ArtifactMissing, naming what to do, when the folder holds nothing that runtime
    can load.
    """
    held = foreign_artifacts(folder)
    if runtime == "onnx":
        wanted = onnx_file(variant)
        if (folder / wanted).is_file():
            return VersionMetadata(
                name=name,
                version=version,
                artifacts={artifact_key("onnx", variant): {"format": "onnx", "files": {}}},
            )
        if "savedmodel" in held and not variant:
            raise ArtifactMissing(
                f"{folder} holds a SavedModel and no {wanted}, and the ONNX runtime serves "
                f"only ONNX: serve it with --model-runtime {name}=savedmodel, or convert it "
                f"with `tfship import {folder} --name {name} --model-dir {folder.parent.parent}`"
                " (it publishes the next version with ONNX and checksums)"
            )
        raise ArtifactMissing(f"{folder} has no metadata.json and no {wanted}: nothing to serve")
    if runtime == "savedmodel":
        if "savedmodel" not in held:
            hint = f"; serve it with --model-runtime {name}=onnx" if "onnx" in held else ""
            raise ArtifactMissing(
                f"{folder} has no metadata.json and no {SAVED_MODEL_FILE}: the SavedModel "
                f"runtime has nothing to load{hint}"
            )
        defs = read_signature_defs(folder / SAVED_MODEL_FILE)
        signature_name = _default_signature(defs, folder)
        signature = defs[signature_name]
        return VersionMetadata(
            name=name,
            version=version,
            signature_name=signature_name,
            inputs=_tensors(signature.get("inputs", {})),
            outputs=_tensors(signature.get("outputs", {})),
            artifacts={"savedmodel": {"format": "savedmodel", "files": {}}},
            tf_serving_signature_def=defs,
        )
    raise RepositoryError(f"unknown runtime {runtime!r}")


def read_signature_defs(path: Path) -> dict[str, Any]:
    """Every SignatureDef of a SavedModel's ``serve`` MetaGraph, as TF Serving's JSON."""
    from google.protobuf import json_format
    from google.protobuf.message import DecodeError

    from service.codecs.grpc_protos import message

    try:
        proto = message("tensorflow.SavedModel").FromString(path.read_bytes())
    except DecodeError as exc:
        raise IntegrityError(f"{path} is not a SavedModel protobuf: {exc}") from None
    except OSError as exc:
        raise RepositoryError(f"{path} cannot be read: {exc}") from None
    graphs = [g for g in proto.meta_graphs if _SERVE_TAG in g.meta_info_def.tags]
    if not graphs:
        tags = sorted({t for g in proto.meta_graphs for t in g.meta_info_def.tags})
        raise ArtifactMissing(
            f"{path} has no MetaGraph tagged '{_SERVE_TAG}' (it has: {', '.join(tags) or 'none'})"
        )
    # TF Serving prints signature definitions with default-valued fields and the field
    # names of the .proto file; the same options give the same JSON.
    return {
        key: json_format.MessageToDict(
            graphs[0].signature_def[key],
            always_print_fields_with_no_presence=True,
            preserving_proto_field_name=True,
        )
        for key in sorted(graphs[0].signature_def)
        if not key.startswith("__")  # "__saved_model_init_op" is no signature to call
    }


def _default_signature(defs: dict[str, Any], folder: Path) -> str:
    if SERVING_DEFAULT in defs:
        return SERVING_DEFAULT
    if len(defs) == 1:
        return next(iter(defs))
    raise ArtifactMissing(
        f"{folder / SAVED_MODEL_FILE} has no '{SERVING_DEFAULT}' signature and "
        f"{len(defs)} others ({', '.join(defs) or 'none'}): cannot tell which to serve"
    )


def _tensors(infos: dict[str, Any]) -> tuple[TensorInfo, ...]:
    described = []
    for key in sorted(infos):
        info = infos[key]
        dtype = NUMPY_OF_TF_DTYPE.get(info.get("dtype", ""), "")
        shape = info.get("tensor_shape", {})
        if not dtype or shape.get("unknown_rank"):
            continue  # the SavedModel runtime reads these from TensorFlow itself
        dims = tuple(int(d.get("size", -1)) for d in shape.get("dim", []))
        described.append(TensorInfo(key, dtype, dims, info.get("name") or None))
    return tuple(described)
