"""Models made the way other tools make them, with no tfship metadata.json.

A Keras 3 model exported as every Keras tutorial does (``model.export(dir,
format="tf_saved_model")``), and ONNX graphs built with ``onnx.helper`` in Triton's layout
(``<name>/<version>/model.onnx``). Their weights are fixed, so the right answers are known
in numpy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# Dense(3, softmax) over 4 features: known weights, known answers.
KERAS_WEIGHTS = np.array(
    [[0.5, -1.0, 0.25], [1.5, 0.0, -0.5], [-0.75, 0.5, 1.0], [0.0, 2.0, -1.0]],
    dtype=np.float32,
)
KERAS_BIAS = np.array([0.1, -0.2, 0.3], dtype=np.float32)
SCALE = np.array([2.0, -3.0], dtype=np.float32)


def keras_probabilities(rows: np.ndarray) -> np.ndarray:
    logits = np.asarray(rows, np.float32) @ KERAS_WEIGHTS + KERAS_BIAS
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def export_keras_saved_model(folder: Path) -> Path:
    """A Keras 3 model exported as the Keras docs show; signatures ``serve`` and
    ``serving_default``, input ``keras_tensor`` [-1, 4], output ``output_0`` [-1, 3]."""
    import keras

    # The name Keras gives the first unnamed input of a process, fixed: later models of the
    # same test process would get keras_tensor_1, _2...
    model = keras.Sequential(
        [keras.Input((4,), name="keras_tensor"), keras.layers.Dense(3, activation="softmax")]
    )
    model.layers[0].set_weights([KERAS_WEIGHTS, KERAS_BIAS])
    model.export(str(folder), format="tf_saved_model", verbose=False)
    return folder


def keras_logits(rows: np.ndarray) -> np.ndarray:
    return np.asarray(rows, np.float32) @ KERAS_WEIGHTS + KERAS_BIAS


def export_keras_two_signatures(folder: Path) -> Path:
    """The same Dense layer exported with two functions, as Keras' ExportArchive writes
    them: ``serving_default`` (``features`` -> ``probabilities``) and ``logits``
    (``features`` -> ``logits``, before the softmax): a signature that is not the served
    one's alias, so it runs as itself."""
    import keras
    import tensorflow as tf

    model = keras.Sequential(
        [keras.Input((4,), name="features"), keras.layers.Dense(3, activation="softmax")]
    )
    dense = model.layers[0]
    dense.set_weights([KERAS_WEIGHTS, KERAS_BIAS])
    spec = [tf.TensorSpec([None, 4], tf.float32, name="features")]

    def probabilities(features: Any) -> dict[str, Any]:
        return {"probabilities": model(features)}

    def logits(features: Any) -> dict[str, Any]:
        return {"logits": tf.matmul(features, dense.kernel) + dense.bias}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", probabilities, input_signature=spec)
    archive.add_endpoint("logits", logits, input_signature=spec)
    archive.write_out(str(folder), verbose=False)
    return folder


def scale_prediction(rows: np.ndarray) -> np.ndarray:
    return np.asarray(rows, np.float32) * SCALE


def write_scale_onnx(path: Path, batch: str | int = "N") -> Path:
    """``x`` [batch, 2] float -> ``y`` = x * (2, -3); a symbolic batch unless told."""
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "scale"], ["y"])],
        "scale",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 2])],
        initializer=[numpy_helper.from_array(SCALE, "scale")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # readable by every onnxruntime the project supports
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def write_mixed_types_onnx(path: Path) -> Path:
    """Two inputs of other dtypes (int64 ``ids`` [N, T], bool ``mask`` [N, T]) and an
    output of rank 1: ``count`` [N] = number of ids where mask is set."""
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["mask"], ["mask64"], to=TensorProto.INT64),
            helper.make_node("Mul", ["ids", "mask64"], ["kept"]),
            helper.make_node("Sign", ["kept"], ["flags"]),
            helper.make_node("ReduceSum", ["flags", "axes"], ["count"], keepdims=0),
        ],
        "mixed",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", "T"]),
            helper.make_tensor_value_info("mask", TensorProto.BOOL, ["N", "T"]),
        ],
        [helper.make_tensor_value_info("count", TensorProto.INT64, ["N"])],
        initializer=[numpy_helper.from_array(np.array([1], np.int64), "axes")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def write_tagged_onnx(path: Path) -> Path:
    """A string input beside a numeric one, each echoed: ``plan`` [N, 1] string ->
    ``plan_seen``, ``monthly_price`` [N, 1] float -> ``price_seen``."""
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["plan"], ["plan_seen"]),
            helper.make_node("Identity", ["monthly_price"], ["price_seen"]),
        ],
        "tagged",
        [
            helper.make_tensor_value_info("plan", TensorProto.STRING, ["N", 1]),
            helper.make_tensor_value_info("monthly_price", TensorProto.FLOAT, ["N", 1]),
        ],
        [
            helper.make_tensor_value_info("plan_seen", TensorProto.STRING, ["N", 1]),
            helper.make_tensor_value_info("price_seen", TensorProto.FLOAT, ["N", 1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
