"""ONNX Runtime: the default runtime. Imports no TensorFlow (start-up time and memory)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from tfship.version_metadata import VersionMetadata
from service.models.runtimes.deadlines import WATCHDOG
from service.errors import ComputeTimeout
from service.models.runtimes.base import Signature, TensorSpec, signature_from_metadata
from tfship.repository import onnx_file

log = logging.getLogger("tfship.registry")

# ONNX Runtime's element type names whose numpy name differs ("tensor(float)" etc.).
_NUMPY_NAMES = {"float": "float32", "double": "float64", "string": "object"}


class OnnxRuntime:
    def __init__(
        self, folder: Path, metadata: VersionMetadata, threads: int, variant: str = ""
    ) -> None:
        path = folder / onnx_file(variant)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # One request at a time per worker: parallel branches would only add scheduling.
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        if not metadata.inputs:  # a foreign version: the graph is the only description
            self.signature: Signature = _signature_of(self._session, path)
            return
        self.signature = signature_from_metadata(metadata)
        onnx_inputs = {i.name for i in self._session.get_inputs()}
        onnx_outputs = {o.name for o in self._session.get_outputs()}
        if (
            onnx_inputs != set(self.signature.input_names)
            or not set(self.signature.output_names) <= onnx_outputs
        ):
            raise ValueError(
                f"{path} does not match metadata.json: ONNX inputs "
                f"{sorted(onnx_inputs)}, outputs {sorted(onnx_outputs)}; metadata inputs "
                f"{self.signature.input_names}, outputs {self.signature.output_names}"
            )

    def predict(
        self,
        inputs: Mapping[str, np.ndarray],
        outputs: Sequence[str] | None = None,
        timeout: float | None = None,
    ) -> dict[str, np.ndarray]:
        names = list(outputs) if outputs else self.signature.output_names
        if not timeout:
            results = self._session.run(names, dict(inputs))
            return dict(zip(names, results, strict=True))
        options = ort.RunOptions()
        with WATCHDOG.guard(timeout, options):
            try:
                results = self._session.run(names, dict(inputs), options)
            except Exception:
                if options.terminate:
                    raise ComputeTimeout(
                        f"model compute took longer than {timeout:g} s and was stopped "
                        "(TFSHIP_REQUEST_TIMEOUT_SECONDS); send fewer rows per request"
                    ) from None
                raise
        return dict(zip(names, results, strict=True))


def _signature_of(session: Any, path: Path) -> Signature:
    """The graph's own inputs and outputs; symbolic or unknown dimensions become -1."""

    def spec(arg: Any) -> TensorSpec | None:
        kind = str(arg.type)
        if not (kind.startswith("tensor(") and kind.endswith(")")):
            return None  # a sequence or map (sklearn's ZipMap): no tensor to send or return
        element = kind[len("tensor(") : -1]
        try:
            dtype = np.dtype(_NUMPY_NAMES.get(element, element))
        except TypeError:
            return None
        shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in arg.shape or [])
        return TensorSpec(arg.name, dtype, shape)

    inputs = []
    for arg in session.get_inputs():
        described = spec(arg)
        if described is None:
            raise ValueError(f"{path}: input '{arg.name}' is {arg.type}; only tensors can be sent")
        inputs.append(described)
    outputs = []
    for arg in session.get_outputs():
        described = spec(arg)
        if described is None:
            log.warning("%s: output '%s' is %s, not a tensor: not served", path, arg.name, arg.type)
        else:
            outputs.append(described)
    if not outputs:
        raise ValueError(f"{path}: no output is a tensor; nothing to return")
    return Signature("serving_default", tuple(inputs), tuple(outputs))
