"""Triton's model configuration for a tfship version: as JSON (the V2 ``/config`` answer)
and as ``config.pbtxt`` (what Triton's ONNX backend reads beside the version folders).

One description, two spellings, so what the server answers and what Triton would load
cannot disagree. Standard library only: the server's ONNX path imports this.

Triton's rule for batching: with ``max_batch_size`` > 0 the first dimension of every input
and output is the batch and is left out of ``dims``. A signature whose every tensor starts
with -1 is batchable that way; any other keeps its full shape and ``max_batch_size: 0``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tfship.repository import list_versions
from tfship.version_metadata import TensorInfo, VersionMetadata

CONFIG_FILE = "config.pbtxt"
LABELS_FILE = "labels.txt"
# max_batch_size written for Triton: tfship's default rows per request (TFSHIP_MAX_ROWS).
DEFAULT_MAX_BATCH_SIZE = 10_000
PLATFORMS = {"onnx": "onnxruntime_onnx", "savedmodel": "tensorflow_savedmodel"}
BACKENDS = {"onnx": "onnxruntime", "savedmodel": "tensorflow"}

_TYPES = {
    "bool": "TYPE_BOOL",
    "uint8": "TYPE_UINT8",
    "uint16": "TYPE_UINT16",
    "uint32": "TYPE_UINT32",
    "uint64": "TYPE_UINT64",
    "int8": "TYPE_INT8",
    "int16": "TYPE_INT16",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "float16": "TYPE_FP16",
    "float32": "TYPE_FP32",
    "float64": "TYPE_FP64",
    "object": "TYPE_STRING",
    "string": "TYPE_STRING",
}


def batchable(inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo]) -> bool:
    return all(t.shape and t.shape[0] == -1 for t in (*inputs, *outputs))


def model_config(
    name: str,
    runtime: str,
    inputs: Sequence[TensorInfo],
    outputs: Sequence[TensorInfo],
    max_batch_size: int,
    labels: bool = False,
) -> dict[str, Any]:
    """The configuration as Triton's ``GET /v2/models/{name}/config`` answers it.

    ``max_batch_size`` applies only when the signature is batchable (0 otherwise);
    ``labels``: the first output names ``labels.txt`` (the class names, one per line).
    """
    batch = max_batch_size if batchable(inputs, outputs) else 0

    def tensor(info: TensorInfo) -> dict[str, Any]:
        dims = list(info.shape[1:] if batch else info.shape)
        entry: dict[str, Any] = {
            "name": info.name,
            "data_type": _TYPES.get(info.dtype, "TYPE_INVALID"),
            "dims": dims or [1],
        }
        if not dims:  # one value per row ([-1]): Triton wants a dim, reshaped away
            entry["reshape"] = {"shape": []}
        return entry

    described_outputs = [tensor(o) for o in outputs]
    if labels and described_outputs:
        described_outputs[0]["label_filename"] = LABELS_FILE
    return {
        "name": name,
        "platform": PLATFORMS[runtime],
        "backend": BACKENDS[runtime],
        "max_batch_size": batch,
        "input": [tensor(i) for i in inputs],
        "output": described_outputs,
    }


def config_pbtxt(config: dict[str, Any]) -> str:
    """The same configuration in protobuf text format (Triton's ``config.pbtxt``)."""
    lines = [
        f'name: "{config["name"]}"',
        f'platform: "{config["platform"]}"',
        f"max_batch_size: {config['max_batch_size']}",
    ]
    for key in ("input", "output"):
        for entry in config[key]:
            lines.append(f"{key} [")
            lines.append("  {")
            lines.append(f'    name: "{entry["name"]}"')
            lines.append(f"    data_type: {entry['data_type']}")
            lines.append(f"    dims: [ {', '.join(str(d) for d in entry['dims'])} ]")
            if "reshape" in entry:
                lines.append("    reshape: { shape: [ ] }")
            if "label_filename" in entry:
                lines.append(f'    label_filename: "{entry["label_filename"]}"')
            lines.append("  }")
            lines.append("]")
    return "\n".join(lines) + "\n"


def write_model_files(model_root: Path, metadata: VersionMetadata) -> list[Path]:
    """``<model>/config.pbtxt`` (and ``labels.txt`` for a classifier) for Triton's ONNX
    backend, describing the version just published if it is the newest; returns the files
    written.

    They sit beside the version folders, where TF Serving and tfship look only at numbered
    folders. Each is written to a temporary name and renamed, so Triton never reads half.
    """
    if "onnx" not in metadata.artifacts or not metadata.inputs or not metadata.outputs:
        return []
    if metadata.version != (list_versions(model_root) or [None])[-1]:
        return []  # an older version published later (--version): the files describe the newest
    config = model_config(
        model_root.name,
        "onnx",
        metadata.inputs,
        metadata.outputs,
        DEFAULT_MAX_BATCH_SIZE,
        labels=bool(metadata.class_names),
    )
    written = [_replace(model_root / CONFIG_FILE, config_pbtxt(config))]
    if metadata.class_names:
        written.append(_replace(model_root / LABELS_FILE, "\n".join(metadata.class_names) + "\n"))
    return written


def _replace(path: Path, text: str) -> Path:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
    return path
