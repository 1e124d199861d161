"""What both Open Inference Protocol front doors (REST and gRPC) answer alike: the server's
extensions, a version's metadata and Triton configuration, and the repository index. Each
answer is built here once, as the JSON-shaped dict REST sends; gRPC fills its message from
the same dict."""

from __future__ import annotations

from typing import Any

from service.codecs.v2_tensors import tensor_metadata
from service.dataplane.call import Call
from service.dataplane.plane import DataPlane
from service.dataplane.statistics import Duration, VersionStatistics
from service.models.model_view import ModelView
from service.models.versions import AVAILABLE, END, LOADING, START, UNLOADING
from tfship.triton_config import PLATFORMS, model_config
from tfship.version_metadata import TensorInfo

EXTENSIONS = [
    "binary_tensor_data",
    "classification",
    "model_repository",
    "model_configuration",
    "statistics",
]
# Triton's repository index states for tfship's (TF Serving's) version states.
INDEX_STATES = {
    START: "LOADING",
    LOADING: "LOADING",
    AVAILABLE: "READY",
    UNLOADING: "UNLOADING",
    END: "UNAVAILABLE",
}


def config_of(model: ModelView, max_rows: int) -> dict[str, Any]:
    """Triton's model configuration of a held version (max_batch_size: the row limit)."""

    def infos(specs: Any) -> list[TensorInfo]:
        return [TensorInfo(s.name, s.dtype.name, s.shape) for s in specs]

    return model_config(
        model.name,
        model.runtime,
        infos(model.signature.inputs),
        infos(model.signature.outputs),
        max_rows,
        labels=bool(model.class_names),
    )


def server_metadata() -> dict[str, Any]:
    from tfship import __version__

    return {"name": "tfship", "version": __version__, "extensions": EXTENSIONS}


def metadata_of(plane: DataPlane, model: ModelView) -> dict[str, Any]:
    """A held version's model metadata: name, serving versions, platform, tensors."""
    return {
        "name": model.name,
        "versions": [str(v) for v in plane.available_versions(model.name)],
        "platform": PLATFORMS[model.runtime],
        "inputs": [tensor_metadata(spec) for spec in model.signature.inputs],
        "outputs": [tensor_metadata(spec) for spec in model.signature.outputs],
    }


def repository_index(plane: DataPlane, call: Call, only_ready: bool) -> list[dict[str, str]]:
    """Triton's repository index: every managed version of every model the call's key may
    use (a model with no version yet by name alone); ``only_ready``: READY ones only."""
    index = []
    for name, status in plane.repository(call):
        if status is None:
            if not only_ready:
                index.append({"name": name})
            continue
        state = INDEX_STATES.get(status.state, "UNAVAILABLE")
        if only_ready and state != "READY":
            continue
        index.append(
            {
                "name": name,
                "version": str(status.version),
                "state": state,
                "reason": status.error_message,
            }
        )
    return index


def statistics(found: list[VersionStatistics]) -> dict[str, Any]:
    """Triton's statistics answer (service/dataplane/statistics.py says what each figure
    covers)."""

    def duration(d: Duration) -> dict[str, int]:
        return {"count": d.count, "ns": d.ns}

    none = duration(Duration())
    return {
        "model_stats": [
            {
                "name": s.name,
                "version": str(s.version),
                "last_inference": round(s.last_inference * 1000),  # milliseconds
                "inference_count": s.inference_count,
                "execution_count": s.compute.count,
                "inference_stats": {
                    "success": duration(s.success),
                    "fail": duration(s.fail),
                    "queue": duration(s.queue),
                    # Inside compute_infer's time; counted so the three counts agree.
                    "compute_input": duration(Duration(s.compute.count)),
                    "compute_infer": duration(s.compute),
                    "compute_output": duration(Duration(s.compute.count)),
                    "cache_hit": none,
                    "cache_miss": none,
                },
                "batch_stats": [],
            }
            for s in found
        ]
    }
