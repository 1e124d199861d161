"""An ONNX model's signature from its graph, as the contract's ``TensorInfo``.

Shared by the server (a foreign ``model.onnx`` has no metadata.json to describe it) and
``tfship import``. It takes an open ``onnxruntime.InferenceSession`` and imports nothing
itself, so neither side pays for what the other needs.
"""

from __future__ import annotations

from typing import Any

from tfship.version_metadata import TensorInfo

# ONNX Runtime's element type names whose numpy name differs ("tensor(float)" etc.).
_NUMPY_NAMES = {"float": "float32", "double": "float64", "string": "object"}
_NUMPY_KNOWN = {
    "float16", "float32", "float64", "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64", "bool", "object",
}  # fmt: skip


def tensor_info(arg: Any) -> TensorInfo | None:
    """One graph input or output (a NodeArg); None when it is no tensor numpy can hold (a
    sequence, a map such as sklearn's ZipMap, bfloat16). Symbolic or unknown dims are -1."""
    kind = str(arg.type)
    if not (kind.startswith("tensor(") and kind.endswith(")")):
        return None
    element = kind[len("tensor(") : -1]
    dtype = _NUMPY_NAMES.get(element, element)
    if dtype not in _NUMPY_KNOWN:
        return None
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in arg.shape or [])
    return TensorInfo(arg.name, dtype, shape)


def graph_signature(
    session: Any, where: str
) -> tuple[list[TensorInfo], list[TensorInfo], list[str]]:
    """(inputs, outputs, skipped outputs) of an open session.

    Raises ValueError naming ``where`` when an input is no tensor (nothing could be sent
    for it) or no output is one (nothing could be returned).
    """
    inputs = []
    for arg in session.get_inputs():
        described = tensor_info(arg)
        if described is None:
            raise ValueError(f"{where}: input '{arg.name}' is {arg.type}; only tensors can be sent")
        inputs.append(described)
    outputs, skipped = [], []
    for arg in session.get_outputs():
        described = tensor_info(arg)
        if described is None:
            skipped.append(f"{arg.name} ({arg.type})")
        else:
            outputs.append(described)
    if not outputs:
        raise ValueError(f"{where}: no output is a tensor; nothing could be returned")
    return inputs, outputs, skipped
