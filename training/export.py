"""Export stage: SavedModel + ONNX into a staging folder, then a TF-vs-ONNX parity check.

The SavedModel goes at the version root with a ``serving_default`` signature whose inputs
and output carry meaningful names (``pixels`` -> ``probabilities``; a CSV model takes one
input per column; a regression model answers ``predictions``), so TF Serving, Triton and
tfship's own server all see the same names.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfship.repository import ONNX_FILE, SAVED_MODEL_FILE, WARMUP_FILE
from training.errors import ExportError
from training.model import InputSpec

SIGNATURE_NAME = "serving_default"


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str  # numpy dtype name
    shape: list[int]  # -1 for unknown (the batch)
    tf_name: str  # the graph tensor name TF Serving reports in metadata

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "shape": self.shape,
            "tf_name": self.tf_name,
        }


@dataclass(frozen=True)
class SavedModelInfo:
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    # GetModelMetadataResponse's SignatureDefMap as TF Serving prints it, kept so that the
    # ONNX path can answer /metadata without importing TensorFlow.
    signature_def_json: dict[str, Any]


CLASSIFY_SIGNATURE = "classification"
REGRESS_SIGNATURE = "regression"
# TF Serving's Classify and Regress APIs accept only signatures with these method names.
_METHOD_NAMES = {
    CLASSIFY_SIGNATURE: "tensorflow/serving/classify",
    REGRESS_SIGNATURE: "tensorflow/serving/regress",
}


def _example_endpoint(
    model: keras.Model, inputs: list[InputSpec], class_names: list[str]
) -> tuple[str, Any]:
    """TF Serving's classify/regress signature: serialized tf.Examples in, one feature per
    model input (named like it), parsed in the graph."""
    features = {
        spec.name: tf.io.FixedLenFeature(
            spec.shape, tf.string if spec.dtype == "string" else tf.float32
        )
        for spec in inputs
    }
    names = [spec.name for spec in inputs]

    def parsed(examples: tf.Tensor) -> Any:
        values = tf.io.parse_example(examples, features)
        return values[names[0]] if len(names) == 1 else values

    if class_names:
        labels = tf.constant([class_names])

        def classify(inputs: tf.Tensor) -> dict[str, tf.Tensor]:
            scores = model(parsed(inputs), training=False)
            return {"classes": tf.tile(labels, [tf.shape(scores)[0], 1]), "scores": scores}

        return CLASSIFY_SIGNATURE, classify

    def regress(inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"outputs": tf.reshape(model(parsed(inputs), training=False), [-1])}

    return REGRESS_SIGNATURE, regress


def _set_method_names(folder: Path) -> None:
    """Keras writes every signature as a predict signature; TF Serving checks the method
    name before it classifies or regresses, so the two example signatures get theirs."""
    from tensorflow.core.protobuf import saved_model_pb2

    path = folder / SAVED_MODEL_FILE
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString(path.read_bytes())
    for meta_graph in proto.meta_graphs:
        for key, method in _METHOD_NAMES.items():
            if key in meta_graph.signature_def:
                meta_graph.signature_def[key].method_name = method
    path.write_bytes(proto.SerializeToString())


def export_saved_model(
    model: keras.Model,
    inputs: list[InputSpec],
    output: str,
    folder: Path,
    class_names: list[str] | None = None,
    example_signature: bool = True,
) -> SavedModelInfo:
    """Write the SavedModel at ``folder`` (the version root) and read its signature back.

    ``serving_default`` takes the named inputs (predict); unless ``example_signature`` is
    False (a model whose task is unknown), a ``classification`` (or, without class names,
    ``regression``) signature takes serialized tf.Examples, for TF Serving's Classify and
    Regress APIs.
    """
    names = [spec.name for spec in inputs]

    def serve(*tensors: tf.Tensor) -> dict[str, tf.Tensor]:
        # Returning a dict names the output tensor; model.export() would say "output_0".
        given = tensors[0] if len(tensors) == 1 else dict(zip(names, tensors, strict=True))
        return {output: model(given, training=False)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serve",
        fn=serve,
        input_signature=[
            tf.TensorSpec((None, *spec.shape), tf.dtypes.as_dtype(spec.dtype), name=spec.name)
            for spec in inputs
        ],
    )
    if example_signature:
        key, function = _example_endpoint(model, inputs, class_names or [])
        archive.add_endpoint(
            name=key,
            fn=function,
            input_signature=[tf.TensorSpec((None,), tf.string, name="inputs")],
        )
    archive.write_out(str(folder), verbose=False)
    _set_method_names(folder)
    return read_saved_model_signature(folder)


def read_saved_model_signature(folder: Path) -> SavedModelInfo:
    from google.protobuf import json_format
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((folder / SAVED_MODEL_FILE).read_bytes())
    meta_graph = proto.meta_graphs[0]
    signature = meta_graph.signature_def[SIGNATURE_NAME]

    def describe(infos: Any) -> list[TensorInfo]:
        described = []
        for name in sorted(infos):
            info = infos[name]
            dims = [int(d.size) for d in info.tensor_shape.dim]
            dtype = tf.dtypes.as_dtype(info.dtype).as_numpy_dtype
            described.append(TensorInfo(name, np.dtype(dtype).name, dims, info.name))
        return described

    # TF Serving prints this proto with default-valued fields included and field names as
    # in the .proto file; the same options here give the same JSON shape.
    signature_json = {
        name: json_format.MessageToDict(
            meta_graph.signature_def[name],
            always_print_fields_with_no_presence=True,
            preserving_proto_field_name=True,
        )
        for name in meta_graph.signature_def
    }
    return SavedModelInfo(describe(signature.inputs), describe(signature.outputs), signature_json)


def write_warmup_requests(
    folder: Path, model_name: str, inputs: list[InputSpec], rows: dict[str, np.ndarray]
) -> Path:
    """TF Serving's warm-up file: PredictionLog records (one row, then a batch of the given
    rows) that TF Serving and tfship replay when loading the version, so the first client
    does not pay for kernel selection and buffer allocation."""
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    target = folder / WARMUP_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    count = len(next(iter(rows.values())))
    with tf.io.TFRecordWriter(str(target)) as writer:
        for size in sorted({1, count}):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = SIGNATURE_NAME
            for spec in inputs:
                values = rows[spec.name][:size]
                # Training's inputs are float32 or string; an imported model's, any dtype.
                dtype = tf.string if spec.dtype in ("string", "object") else tf.as_dtype(spec.dtype)
                request.inputs[spec.name].CopyFrom(tf.make_tensor_proto(values, dtype=dtype))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return target


def convert_to_onnx(folder: Path, opset: int) -> Path:
    """SavedModel -> ONNX with tf2onnx's command line (its from_keras fails on Keras 3)."""
    target = folder / ONNX_FILE
    command = [
        sys.executable,
        "-m",
        "tf2onnx.convert",
        "--saved-model",
        str(folder),
        "--tag",
        "serve",
        "--signature_def",
        SIGNATURE_NAME,
        "--opset",
        str(opset),
        "--output",
        str(target),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not target.is_file():
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise ExportError(f"tf2onnx failed (exit {result.returncode}):\n{tail}")
    return target


def predict_saved_model(
    folder: Path, x: dict[str, np.ndarray], output: str, batch: int = 1024
) -> np.ndarray:
    """The exported signature's answers, in batches (as a server would see them)."""
    loaded = tf.saved_model.load(str(folder))
    signature = loaded.signatures[SIGNATURE_NAME]
    rows = len(next(iter(x.values())))
    parts = [
        signature(**{k: tf.constant(v[start : start + batch]) for k, v in x.items()})[
            output
        ].numpy()
        for start in range(0, rows, batch)
    ]
    return np.concatenate(parts)


def predict_onnx(path: Path, x: dict[str, np.ndarray], output: str) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run([output], dict(x))[0]
