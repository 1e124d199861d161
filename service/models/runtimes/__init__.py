"""Runtimes, imported lazily so the ONNX path never imports TensorFlow."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tfship.version_metadata import VersionMetadata
from service.models.runtimes.base import Runtime

# Which artifact in metadata.json each runtime loads (and so which files get verified).
ARTIFACT_FOR_RUNTIME = {"onnx": "onnx", "savedmodel": "savedmodel"}


def load_runtime(
    kind: str,
    folder: Path,
    metadata: VersionMetadata,
    threads: int,
    variant: str = "",
    device: str = "cpu",
) -> Runtime:
    """``device``: ``cpu`` or ``cuda`` (``tfship serve`` resolved ``auto`` already)."""
    if kind == "onnx":
        from service.models.runtimes.onnx import OnnxRuntime

        return OnnxRuntime(folder, metadata, threads, variant, device)
    if variant:
        raise ValueError(f"runtime {kind!r} has no variants (only onnx does)")
    if kind == "savedmodel":
        from service.models.runtimes.savedmodel import SavedModelRuntime

        return SavedModelRuntime(folder, metadata, threads, device)
    raise ValueError(f"unknown runtime {kind!r}")
