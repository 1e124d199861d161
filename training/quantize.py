"""Quantized variants of the exported float ONNX model, each measured before it ships.

- ``int8_dynamic``: ONNX Runtime dynamic quantization: int8 weights, activations quantized
  on the fly. No calibration; the documented choice for MLPs and RNNs.
- ``int8_static``: QDQ format, per-channel int8 weights, activation ranges calibrated on a
  sample of the train split. The documented choice for CNNs.
- ``int8``: the one of the two that fits the architecture (static for cnn, else dynamic).
  It is the file ``model.int8.onnx`` that a model config's ``variant: int8`` serves.
- ``fp16``: float16 weights and arithmetic (onnxconverter-common), float32 inputs/outputs.

Keras 3's own ``model.quantize("int8")`` covers only Dense/EinsumDense/Embedding and blocks
ONNX export, so quantization works on the exported ONNX file instead.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.config import LOWER_IS_BETTER, TrainConfig
from training.errors import ExportError

VARIANTS = ("int8", "int8_dynamic", "int8_static", "fp16")
WEIGHTED_OPS = ("Conv", "MatMul", "Gemm")


def int8_method(variant: str, architecture: str) -> str:
    if variant == "int8":
        return "static" if architecture == "cnn" else "dynamic"
    return variant.removeprefix("int8_")


def _has_string_inputs(model_path: Path) -> bool:
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    return any(i.type.tensor_type.elem_type == onnx.TensorProto.STRING for i in model.graph.input)


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over a sample of the train split."""

    def __init__(self, sample: dict[str, np.ndarray], batch: int = 32) -> None:
        rows = len(next(iter(sample.values())))
        self._batches: Iterator[dict[str, np.ndarray]] = iter(
            [
                {name: values[start : start + batch] for name, values in sample.items()}
                for start in range(0, rows, batch)
            ]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def quantize_dynamic_int8(source: Path, target: Path) -> dict[str, object]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    return {"method": "dynamic", "weights": "int8", "activations": "int8 computed per batch"}


def quantize_static_int8(
    source: Path, target: Path, sample: dict[str, np.ndarray]
) -> dict[str, object]:
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    with tempfile.TemporaryDirectory(prefix="tfship-quant-") as scratch:
        # Shape inference and graph clean-up first, as ONNX Runtime recommends.
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(target),
            _Calibration(sample),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            # Activations asymmetric uint8: after ReLU they are never negative, and a
            # symmetric int8 range would waste half its steps (measured: fewer flips).
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            # Only the weighted ops: a quantized softmax would round every score to a
            # multiple of 1/127, which classify and top_k clients would see.
            op_types_to_quantize=list(WEIGHTED_OPS),
        )
    rows = len(next(iter(sample.values())))
    return {
        "method": "static",
        "format": "QDQ",
        "per_channel": True,
        "weights": "int8 per channel",
        "activations": "uint8 asymmetric",
        "calibration": f"{rows} rows of the train split, min/max",
        "quantized_ops": list(WEIGHTED_OPS),
    }


def convert_fp16(source: Path, target: Path) -> dict[str, object]:
    import onnx
    from onnxconverter_common import float16

    model = onnx.load(str(source))
    converted = float16.convert_float_to_float16(model, keep_io_types=True)
    onnx.save(converted, str(target))
    return {"method": "float16", "weights": "float16", "inputs_outputs": "float32"}


def make_variant(
    variant: str,
    architecture: str,
    source: Path,
    target: Path,
    calibration: dict[str, np.ndarray],
) -> dict[str, object]:
    """Write ``target`` from the float model ``source``; returns how it was made."""
    try:
        if variant == "fp16":
            return convert_fp16(source, target)
        method = int8_method(variant, architecture)
        if method == "static" and not _has_string_inputs(source):
            return quantize_static_int8(source, target, calibration)
        # String lookups cannot be calibrated: such models get dynamic quantization.
        return quantize_dynamic_int8(source, target)
    except ExportError:
        raise
    except Exception as exc:  # the quantizers raise many types; the run must say which failed
        raise ExportError(f"quantization to {variant} failed: {type(exc).__name__}: {exc}") from exc


def sample_rows(x: dict[str, np.ndarray], rows: int, seed: int) -> dict[str, np.ndarray]:
    """A fixed random sample of the train split for calibration."""
    total = len(next(iter(x.values())))
    index = np.random.default_rng(seed).choice(total, size=min(rows, total), replace=False)
    index.sort()
    return {name: values[index] for name, values in x.items()}


def gzip_size(paths: list[Path]) -> int:
    """Bytes after gzip -9 of the files together: what a sparse or quantized model saves on
    disk and on the wire."""
    import gzip

    return sum(len(gzip.compress(p.read_bytes(), compresslevel=9)) for p in paths)


@dataclass(frozen=True)
class VariantOutcome:
    variant: str
    published: bool
    record: dict[str, Any]  # metadata.json's "compression" entry
    metrics: dict[str, Any] | None  # headline test metrics when published
    artifact: dict[str, Any] | None  # metadata.json's "artifacts" entry when published


def build_variant(
    variant: str,
    config: TrainConfig,
    staging: Path,
    calibration: dict[str, np.ndarray],
    x_test: dict[str, np.ndarray],
    y_test: np.ndarray,
    class_names: list[str],
    output: str,
    float_metric: float,
) -> VariantOutcome:
    """Make one variant in ``staging``, evaluate it on the test split, keep it only if it
    loses no more than ``compress.tolerance`` of the gate metric."""
    from tfship.repository import ONNX_FILE, digest_files, onnx_file
    from training import evaluate, export

    file = onnx_file(variant)
    source, target = staging / ONNX_FILE, staging / file
    how = make_variant(variant, config.model.architecture, source, target, calibration)
    outputs = export.predict_onnx(target, x_test, output).astype(np.float32)
    metrics = evaluate.headline(evaluate.task_metrics(config.task, outputs, y_test, class_names))
    metric = config.gate_metric()
    value = float(metrics[metric])
    loss = value - float_metric if metric in LOWER_IS_BETTER else float_metric - value
    tolerance = config.compress.tolerance
    record: dict[str, Any] = {
        "file": file,
        **how,
        "size_bytes": target.stat().st_size,
        "gzip_bytes": gzip_size([target]),
        "float_size_bytes": source.stat().st_size,
        "size_ratio": round(target.stat().st_size / source.stat().st_size, 4),
        "metric": metric,
        "value": value,
        "float_value": float_metric,
        "loss": loss,
        "tolerance": tolerance,
    }
    if loss > tolerance:
        target.unlink()
        record["published"] = False
        record["reason"] = (
            f"{metric} {value:.4f} against the float model's {float_metric:.4f}: loses "
            f"{loss:.4f}, more than compress.tolerance {tolerance:g}"
        )
        return VariantOutcome(variant, False, record, None, None)
    record["published"] = True
    artifact = {
        "format": "onnx",
        "variant": variant,
        "opset": config.export.onnx_opset,
        "files": digest_files(staging, [file]),
        "size_bytes": record["size_bytes"],
        "quantization": how,
    }
    return VariantOutcome(variant, True, record, metrics, artifact)
