"""Small ONNX models built with onnx.helper, published the way training publishes versions.

For serving paths the digits classifier cannot reach (a regression model), without training
another Keras model: the graph is real ONNX, run by the real runtime, and its answers are
known exactly (y = x . w + b).
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tfship.repository import ONNX_FILE, read_metadata, sha256_file, write_metadata
from tfship.version_metadata import VersionMetadata

LINEAR_WEIGHTS = np.array([[0.5], [-2.0], [1.25]], dtype=np.float32)
LINEAR_BIAS = np.array([3.0], dtype=np.float32)


def linear_prediction(rows: np.ndarray) -> np.ndarray:
    return (np.asarray(rows, dtype=np.float32) @ LINEAR_WEIGHTS + LINEAR_BIAS)[:, 0]


def _tensor_signature(name: str, shape: list[int]) -> dict[str, Any]:
    return {
        "name": f"serving_default_{name}:0",
        "dtype": "DT_FLOAT",
        "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in shape]},
    }


SLOW_FEATURES = 256


def publish_slow_model(model_dir: Path, name: str = "slow", depth: int = 300) -> Path:
    """``features`` [-1, 256] -> ``value`` [-1, 256] through ``depth`` MatMuls by the
    identity: exact answers; the cost per row depends on the CPU (0.15-0.5 ms per row at
    depth 300 on the machines seen), so tests that need a known time size it with
    ``publish_calibrated_slow_model``."""
    nodes, previous = [], "features"
    for index in range(depth):
        output = "value" if index == depth - 1 else f"h{index}"
        nodes.append(helper.make_node("MatMul", [previous, "identity"], [output]))
        previous = output
    graph = helper.make_graph(
        nodes,
        "slow",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", SLOW_FEATURES])],
        [helper.make_tensor_value_info("value", TensorProto.FLOAT, ["batch", SLOW_FEATURES])],
        initializer=[numpy_helper.from_array(np.eye(SLOW_FEATURES, dtype=np.float32), "identity")],
    )
    return _publish(model_dir, name, 1, graph, "regression", SLOW_FEATURES, SLOW_FEATURES)


def publish_calibrated_slow_model(
    model_dir: Path, rows: int, seconds: float, threads: int
) -> tuple[Path, float]:
    """A slow model deep enough that ``rows`` rows take about ``seconds`` on this machine,
    and the compute time its depth was sized for (from the fastest of three probe runs, so
    a busy moment while measuring makes the model slower, never the estimate too high).

    Measured with the server's own ONNX runtime class and thread count, so the figure is
    what a request will cost, on a fast CPU or a slow one.
    """
    from service.models.runtimes.onnx import OnnxRuntime

    probe_depth = 50
    with tempfile.TemporaryDirectory() as probe_dir:
        probe = publish_slow_model(Path(probe_dir), depth=probe_depth)
        runtime = OnnxRuntime(probe, read_metadata(probe), threads)
        features = {"features": np.ones((rows, SLOW_FEATURES), np.float32)}
        runtime.predict(features)  # first run: allocations, not compute
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            runtime.predict(features)
            timings.append(time.perf_counter() - started)
    per_layer = min(timings) / probe_depth
    depth = max(probe_depth, math.ceil(seconds / per_layer))
    return publish_slow_model(model_dir, depth=depth), depth * per_layer


def publish_linear_regression(model_dir: Path, name: str = "linear", version: int = 1) -> Path:
    """``features`` [-1, 3] float32 -> ``value`` [-1, 1]: a regression model."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["features", "w"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["value"]),
        ],
        "linear",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("value", TensorProto.FLOAT, ["batch", 1])],
        initializer=[
            numpy_helper.from_array(LINEAR_WEIGHTS, "w"),
            numpy_helper.from_array(LINEAR_BIAS, "b"),
        ],
    )
    return _publish(model_dir, name, version, graph, "regression", 3, 1)


def _publish(
    model_dir: Path,
    name: str,
    version: int,
    graph: Any,
    task: str,
    features: int,
    outputs: int,
) -> Path:
    """Save a ``features`` -> ``value`` graph as a version, with its metadata.json."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    folder = model_dir / name / str(version)
    folder.mkdir(parents=True)
    onnx.save(model, folder / ONNX_FILE)
    write_metadata(
        folder,
        VersionMetadata.from_json(
            {
                "format_version": 1,
                "name": name,
                "version": version,
                "task": task,
                "signature_name": "serving_default",
                "inputs": [{"name": "features", "dtype": "float32", "shape": [-1, features]}],
                "outputs": [{"name": "value", "dtype": "float32", "shape": [-1, outputs]}],
                "class_names": [],
                "tf_serving_signature_def": {
                    "serving_default": {
                        "inputs": {"features": _tensor_signature("features", [-1, features])},
                        "outputs": {"value": _tensor_signature("value", [-1, outputs])},
                        "method_name": "tensorflow/serving/predict",
                    }
                },
                "artifacts": {
                    "onnx": {
                        "format": "onnx",
                        "files": {ONNX_FILE: sha256_file(folder / ONNX_FILE)},
                    }
                },
            }
        ),
    )
    return folder
