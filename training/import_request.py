"""What one ``tfship import`` is asked (``ImportRequest``) and what its steps have staged so
far (``Staged``): the typed hand-over between the import's modules."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfship.version_metadata import TensorInfo

STEPS = 5


def say(step: int, message: str) -> None:
    print(f"[{step}/{STEPS}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class ImportRequest:
    source: Path
    name: str
    model_dir: Path
    version: int | None = None
    # .npz of rows keyed by input name (and ``labels``): parity, warm-up, calibration.
    calibration: Path | None = None
    # .npz of rows keyed by input name, as traffic will look: the baseline profile.
    profile_data: Path | None = None
    labels_file: Path | None = None  # class names, one per line (Triton's labels file)
    output_name: str = "output_0"  # Keras's own export names its output so
    onnx: bool = True
    quantize: tuple[str, ...] = ()  # training's variants: int8, int8_dynamic, int8_static, fp16
    quantize_tolerance: float = 0.01  # most accuracy a variant may lose (with labels)
    opset: int = 17
    parity_tolerance: float = 1e-4
    warmup_rows: int = 8
    seed: int = 0


@dataclass
class Staged:
    """What the steps have put in the staging folder so far."""

    kind: str  # "keras", "savedmodel" or "onnx"
    inputs: list[TensorInfo] = field(default_factory=list)
    outputs: list[TensorInfo] = field(default_factory=list)
    signature_defs: dict[str, Any] | None = None
    parity: dict[str, Any] | None = None
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)  # "compression" records
    variant_artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
