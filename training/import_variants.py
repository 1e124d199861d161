"""``tfship import --quantize``: variants of an imported model's ONNX file, gated as in training.

The gate needs labels: with ``--labels`` (a classifier) and a ``labels`` array in the
``--calibration`` file, a variant that loses more than the tolerance of accuracy against the
float ONNX model on those rows is not published, as training refuses one on its test split.
Without labels nothing can be measured against the truth: the variant is published with its
agreement with the float model recorded (argmax agreement, largest difference), and the
record says it was not gated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tfship.repository import ONNX_FILE, digest_files, onnx_file
from training.errors import ImportRefused

LABELS_KEY = "labels"


def read_labels(calibration: Path | None, rows: int) -> np.ndarray | None:
    """The ``labels`` array of the calibration file (class indices), if it has one."""
    if calibration is None:
        return None
    with np.load(calibration, allow_pickle=False) as data:
        if LABELS_KEY not in data.files:
            return None
        labels = data[LABELS_KEY]
    if labels.shape != (rows,) or labels.dtype.kind not in "iu":
        raise ImportRefused(
            f"--calibration {calibration}: '{LABELS_KEY}' must hold one class index per row "
            f"({rows} integers), got shape {list(labels.shape)} of {labels.dtype}"
        )
    return labels


def _has_conv(path: Path) -> bool:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return any(node.op_type == "Conv" for node in graph.node)


def make_variants(
    staging: Path,
    variants: list[str],
    rows: dict[str, np.ndarray],
    calibrated: bool,
    labels: np.ndarray | None,
    output: str,
    tolerance: float,
    say: Any,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(artifacts, compression records) for each variant written into ``staging``."""
    from training import export, quantize

    source = staging / ONNX_FILE
    # Static int8 (the choice for CNNs) needs real rows to calibrate on.
    architecture = "cnn" if calibrated and _has_conv(source) else "mlp"
    float_out = export.predict_onnx(source, rows, output)
    artifacts, records = {}, {}
    for variant in variants:
        target = staging / onnx_file(variant)
        how = quantize.make_variant(variant, architecture, source, target, rows)
        out = export.predict_onnx(target, rows, output).astype(np.float32)
        record: dict[str, Any] = {
            "file": target.name,
            **how,
            "size_bytes": target.stat().st_size,
            "gzip_bytes": quantize.gzip_size([target]),
            "float_size_bytes": source.stat().st_size,
            "size_ratio": round(target.stat().st_size / source.stat().st_size, 4),
            "max_abs_diff_vs_float": float(np.abs(out - float_out).max(initial=0.0)),
            "rows": len(out),
        }
        if out.ndim == 2 and out.shape[1] > 1:
            agree = float(np.mean(out.argmax(1) == float_out.argmax(1)))
            record["argmax_agreement_vs_float"] = agree
        if labels is not None and out.ndim == 2:
            value = float(np.mean(out.argmax(1) == labels))
            float_value = float(np.mean(float_out.argmax(1) == labels))
            loss = float_value - value
            record.update(
                metric="accuracy", value=value, float_value=float_value, loss=loss,
                tolerance=tolerance,
            )  # fmt: skip
            if loss > tolerance:
                target.unlink()
                record["published"] = False
                record["reason"] = (
                    f"accuracy {value:.4f} against the float model's {float_value:.4f} on "
                    f"the calibration rows: loses {loss:.4f}, more than {tolerance:g}"
                )
                records[variant] = record
                say(f"quantize: {variant} not published: {record['reason']}")
                continue
        else:
            record["gated"] = False
            record["why_not_gated"] = "no --labels and 'labels' rows: no truth to measure against"
        record["published"] = True
        records[variant] = record
        artifacts[f"onnx.{variant}"] = {
            "format": "onnx",
            "variant": variant,
            "files": digest_files(staging, [target.name]),
            "size_bytes": record["size_bytes"],
            "quantization": how,
        }
        say(
            f"quantize: {variant} ({how.get('method')}) {record['size_bytes']:,} bytes = "
            f"{record['size_ratio']:.0%} of float"
        )
    return artifacts, records
