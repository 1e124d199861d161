"""SavedModel runtime (TensorFlow). Imported only when a model is configured to use it."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfship.version_metadata import VersionMetadata
from service.models.runtimes.base import Signature, TensorSpec

log = logging.getLogger("tfship.registry")
_threads_configured = False


def _import_tensorflow(threads: int, device: str) -> Any:
    from tfship.extras import require
    from tfship.tensorflow_import import import_tensorflow

    # A server installed without it (a model config naming this runtime): the version
    # fails to load with what to install, not with ModuleNotFoundError.
    require("savedmodel", "the SavedModel runtime")
    tf, _ = import_tensorflow(device)  # DeviceError for cuda without a GPU: a failed load

    global _threads_configured
    if not _threads_configured:
        # Must happen before TensorFlow's first op; later calls raise.
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass
        _threads_configured = True
    return tf


class SavedModelRuntime:
    def __init__(
        self, folder: Path, metadata: VersionMetadata, threads: int, device: str = "cpu"
    ) -> None:
        tf = _import_tensorflow(threads, device)
        self._tf = tf
        self._loaded = tf.saved_model.load(str(folder))
        name = metadata.signature_name
        self._function = self._loaded.signatures[name]
        # The signature as the SavedModel itself declares it: the source of truth here.
        self.signature = self._signature(name, self._function)
        # Every other signature, runnable by name (TF Serving's signature_name); one this
        # server cannot describe is left out, never a reason to refuse the served one.
        self._others: dict[str, Any] = {}
        self.other_signatures: dict[str, Signature] = {}
        for other, function in self._loaded.signatures.items():
            if other == name:
                continue
            try:
                self.other_signatures[other] = self._signature(other, function)
            except (AttributeError, TypeError, ValueError) as exc:
                log.warning("%s: signature %r not served by name: %s", folder, other, exc)
                continue
            self._others[other] = function

    @classmethod
    def _signature(cls, name: str, function: Any) -> Signature:
        _, kwargs = function.structured_input_signature
        return Signature(
            name,
            tuple(cls._spec(n, s) for n, s in sorted(kwargs.items())),
            tuple(cls._spec(n, s) for n, s in sorted(function.structured_outputs.items())),
        )

    @staticmethod
    def _spec(name: str, spec: Any) -> TensorSpec:
        shape = tuple(-1 if d is None else int(d) for d in spec.shape.as_list())
        return TensorSpec(name, np.dtype(spec.dtype.as_numpy_dtype), shape)

    def predict(
        self,
        inputs: Mapping[str, np.ndarray],
        outputs: Sequence[str] | None = None,
        timeout: float | None = None,  # TensorFlow cannot stop a call: gunicorn's timeout can
    ) -> dict[str, np.ndarray]:
        return self._call(self._function, self.signature, inputs, outputs)

    def run_signature(
        self,
        name: str,
        inputs: Mapping[str, np.ndarray],
        outputs: Sequence[str] | None = None,
        timeout: float | None = None,
    ) -> dict[str, np.ndarray]:
        return self._call(self._others[name], self.other_signatures[name], inputs, outputs)

    def _call(
        self,
        function: Any,
        signature: Signature,
        inputs: Mapping[str, np.ndarray],
        outputs: Sequence[str] | None,
    ) -> dict[str, np.ndarray]:
        tensors = {name: self._tf.constant(value) for name, value in inputs.items()}
        results = function(**tensors)
        names = list(outputs) if outputs else signature.output_names
        return {name: results[name].numpy() for name in names}
