"""What both Open Inference Protocol front doors (REST and gRPC) answer alike: the server's
extensions, Triton's repository index states, and a version's Triton configuration."""

from __future__ import annotations

from typing import Any

from service.models.model_view import ModelView
from service.models.versions import AVAILABLE, END, LOADING, START, UNLOADING
from tfship.triton_config import model_config
from tfship.version_metadata import TensorInfo

EXTENSIONS = ["binary_tensor_data", "classification", "model_repository", "model_configuration"]
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
