"""The three sources ``tfship import`` takes, each into the staging folder: an ONNX file
(copied, its signature from the graph), a SavedModel folder (copied) or a Keras file
(exported as a SavedModel); the SavedModel's signature read back."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tfship.repository import ONNX_FILE, SAVED_MODEL_FILE, SAVED_MODEL_PARTS
from tfship.version_metadata import TensorInfo
from training.errors import ExportError, ImportRefused
from training.import_request import ImportRequest, Staged, say

KERAS_SUFFIXES = (".keras", ".h5")


def source_kind(source: Path) -> str:
    """Which of the three sources SOURCE is; ImportRefused (exit 2) naming it otherwise."""
    if source.is_dir():
        if (source / SAVED_MODEL_FILE).is_file():
            return "savedmodel"
        raise ImportRefused(f"{source} is a folder without {SAVED_MODEL_FILE}: not a SavedModel")
    if not source.is_file():
        raise ImportRefused(f"{source} does not exist")
    if source.suffix in KERAS_SUFFIXES:
        return "keras"
    if source.suffix == ".onnx":
        return "onnx"
    raise ImportRefused(
        f"{source}: not a .keras file, a SavedModel folder or an .onnx file (by its name)"
    )


def stage_onnx(request: ImportRequest, staging: Path, staged: Staged) -> None:
    import onnxruntime as ort

    from tfship.onnx_signature import graph_signature

    try:
        session = ort.InferenceSession(str(request.source), providers=["CPUExecutionProvider"])
        staged.inputs, staged.outputs, skipped = graph_signature(session, str(request.source))
    except Exception as exc:  # onnxruntime's own errors: the file does not open as a model
        raise ExportError(f"{request.source} does not load in ONNX Runtime: {exc}") from None
    shutil.copyfile(request.source, staging / ONNX_FILE)
    if skipped:
        say(2, f"outputs that are not tensors, not served: {', '.join(skipped)}")
    say(2, "ONNX copied as model.onnx (no SavedModel: the source has none)")


def stage_saved_model(
    request: ImportRequest, staging: Path, staged: Staged, class_names: list[str]
) -> None:
    from training import export

    if staged.kind == "keras":
        import keras

        try:
            model = keras.saving.load_model(str(request.source), compile=False)
        except Exception as exc:  # Keras raises ValueError, OSError, TypeError...
            raise ExportError(f"{request.source} does not load in Keras: {exc}") from None
        if len(model.outputs) != 1:
            raise ExportError(
                f"{request.source} has {len(model.outputs)} outputs; tfship import takes "
                "models with one (export yours with model.export() and import that folder)"
            )
        specs = _keras_input_specs(model)
        # A classify signature needs class names and fixed input shapes.
        examples = bool(class_names) and all(None not in s.shape for s in specs)
        say(2, "SavedModel from the Keras model")
        export.export_saved_model(model, specs, request.output_name, staging, class_names, examples)
    else:
        say(2, "SavedModel copied")
        for part in SAVED_MODEL_PARTS:
            path = request.source / part
            if path.is_dir():
                shutil.copytree(path, staging / part)
            elif path.is_file():
                shutil.copyfile(path, staging / part)
    try:
        info = export.read_saved_model_signature(staging)
    except KeyError:
        raise ExportError(
            f"{request.source} has no '{export.SIGNATURE_NAME}' signature; tfship serves "
            "that one (re-export with it, e.g. model.export())"
        ) from None
    staged.inputs = [TensorInfo(t.name, t.dtype, tuple(t.shape), t.tf_name) for t in info.inputs]
    staged.outputs = [TensorInfo(t.name, t.dtype, tuple(t.shape), t.tf_name) for t in info.outputs]
    staged.signature_defs = info.signature_def_json


def _keras_input_specs(model: Any) -> list[Any]:
    from training.model import InputSpec

    specs = []
    for tensor in model.inputs:
        dtype = "string" if str(tensor.dtype) == "string" else str(tensor.dtype)
        specs.append(InputSpec(tensor.name, tuple(tensor.shape[1:]), dtype))
    return specs
