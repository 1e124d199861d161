"""What the browser console shows of a version, read once from its metadata.json.

A curated, JSON-ready subset (no run folders or host paths, no weight tables): the training
facts, the evaluation, the compression variants, parity, checksums, and the vocabulary of
each categorical input (for the console's "try it" lists). A version without metadata.json
(a TF Serving or Triton layout) gets only what its signature says.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tfship.version_metadata import VersionMetadata


def _get(record: Mapping[str, Any], *keys: str) -> Any:
    value: Any = record
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def vocabularies(record: Mapping[str, Any]) -> dict[str, list[str]]:
    """Each categorical input's known values, in the model's own order."""
    found = {}
    for layer in record.get("preprocessing") or []:
        if isinstance(layer, Mapping) and layer.get("layer") == "StringLookup":
            found[str(layer.get("input"))] = [str(v) for v in layer.get("vocabulary") or []]
    return found


def value_ranges(record: Mapping[str, Any]) -> dict[str, list[float]]:
    """Each image or sequence input's train-split range (the console scales a drawing to
    it: digits' 0-16, not 0-255)."""
    found = {}
    for name, described in (_get(record, "baseline_profile", "inputs") or {}).items():
        channels = _get(described, "features", "intensity", "channels") or []
        edges = [e for channel in channels for e in channel.get("edges") or []]
        if edges:
            found[str(name)] = [min(edges), max(edges)]
    return found


def version_facts(metadata: VersionMetadata) -> dict[str, Any]:
    record = metadata.record
    training = _get(record, "training") or {}
    config = _get(record, "training_config") or {}
    return {
        "created": metadata.created,
        "metrics": {k: dict(v) for k, v in metadata.metrics.items()},
        "quality_gate": record.get("quality_gate"),
        "data": {
            "description": _get(record, "data", "description"),
            "rows": _get(record, "data", "rows"),
            "seed": _get(record, "data", "seed"),
        },
        "architecture": _get(config, "model"),
        "training": {
            "run_id": training.get("run_id"),
            "epochs_run": training.get("epochs_run"),
            "best_epoch": training.get("best_epoch"),
            "fit_seconds": training.get("fit_seconds"),
            "total_seconds": training.get("total_seconds"),
            "history": training.get("history"),
        }
        if training
        else None,
        "fit_diagnosis": record.get("fit_diagnosis"),
        "evaluation": record.get("evaluation"),
        "compression": _get(record, "compression", "variants") or {},
        "parity": record.get("parity"),
        "checksums": {name: metadata.files(name) for name in metadata.artifacts},
        "vocabularies": vocabularies(record),
        "value_ranges": value_ranges(record),
        "import": record.get("import"),
    }
