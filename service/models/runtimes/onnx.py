"""ONNX Runtime: the default runtime. Imports no TensorFlow (start-up time and memory)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from tfship.version_metadata import VersionMetadata
from service.models.runtimes.deadlines import WATCHDOG
from service.errors import ComputeTimeout
from service.models.runtimes.base import Signature, signature_from_metadata
from tfship.devices import CUDA_PROVIDER, onnx_providers
from tfship.onnx_signature import graph_signature
from tfship.repository import onnx_file

log = logging.getLogger("tfship.registry")


class OnnxRuntime:
    def __init__(
        self,
        folder: Path,
        metadata: VersionMetadata,
        threads: int,
        variant: str = "",
        device: str = "cpu",
    ) -> None:
        path = folder / onnx_file(variant)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # One request at a time per worker: parallel branches would only add scheduling.
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(
            str(path), sess_options=options, providers=onnx_providers(device)
        )
        if device == "cuda" and self._session.get_providers()[0] != CUDA_PROVIDER:
            # onnxruntime falls back to the CPU on its own (its log says why): for a
            # server promised the GPU that is a failed load, not a slow one.
            raise RuntimeError(
                f"{path}: onnxruntime could not start its CUDA provider (it runs "
                f"{', '.join(self._session.get_providers())}); see its log above"
            )
        if not metadata.inputs:  # a foreign version: the graph is the only description
            inputs, outputs, skipped = graph_signature(self._session, str(path))
            for output in skipped:
                log.warning("%s: output %s is not a tensor: not served", path, output)
            metadata = dataclasses.replace(metadata, inputs=tuple(inputs), outputs=tuple(outputs))
            self.signature: Signature = signature_from_metadata(metadata)
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

    # One graph, one signature.
    other_signatures: Mapping[str, Signature] = {}

    def run_signature(
        self,
        name: str,
        inputs: Mapping[str, np.ndarray],
        outputs: Sequence[str] | None = None,
        timeout: float | None = None,
    ) -> dict[str, np.ndarray]:
        raise KeyError(f"an ONNX graph has no signature {name!r}")

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

