"""The runtime interface: load a version folder, expose its signature, run predictions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from tfship.version_metadata import TensorInfo, VersionMetadata


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: np.dtype
    shape: tuple[int, ...]  # -1 where any size is accepted (the batch)


@dataclass(frozen=True)
class Signature:
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    # Other names a request's signature_name may give, per API ("predict", "classify",
    # "regress"), and "all": every signature the artifact declares (model_view.with_aliases).
    aliases: Mapping[str, frozenset[str]] = field(default_factory=dict, compare=False)

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [spec.name for spec in self.outputs]

    @property
    def takes_numbers_only(self) -> bool:
        """No string input: JSON tensors for it may be read straight into arrays
        (service/codecs/json_tensors.py), since no refusal has to name the JSON type of
        a stray number among strings."""
        return all(spec.dtype.kind != "O" for spec in self.inputs)


def signature_from_metadata(metadata: VersionMetadata) -> Signature:
    """The predict signature metadata.json declares; a version declaring no inputs or
    outputs cannot be served from it."""
    if not metadata.inputs or not metadata.outputs:
        raise ValueError("metadata.json declares no inputs or no outputs: nothing to serve")

    def specs(entries: tuple[TensorInfo, ...]) -> tuple[TensorSpec, ...]:
        return tuple(TensorSpec(e.name, np.dtype(e.dtype), e.shape) for e in entries)

    return Signature(metadata.signature_name, specs(metadata.inputs), specs(metadata.outputs))


class Runtime(Protocol):
    signature: Signature
    # The artifact's other signatures that ``run_signature`` runs by name (a SavedModel's;
    # an ONNX graph has one).
    other_signatures: Mapping[str, Signature]

    def predict(
        self,
        inputs: Mapping[str, np.ndarray],
        outputs: Sequence[str] | None = None,
        timeout: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Run the model; inputs are already validated against ``signature``.

        ``timeout``: seconds after which the runtime should give up with ComputeTimeout,
        where it can (ONNX Runtime can; TensorFlow ignores it).
        """
        ...

    def run_signature(
        self,
        name: str,
        inputs: Mapping[str, np.ndarray],
        outputs: Sequence[str] | None = None,
        timeout: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Run one of ``other_signatures``, as ``predict`` runs ``signature``."""
        ...
