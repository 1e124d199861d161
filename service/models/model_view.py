"""What a front door may know of a model version: a typed view, built once when it loads.

Front doors never touch a runtime or a ``metadata.json`` key: they read the signature, the
task and the class names here, and run the model through the dataplane. A version whose
metadata lacks an optional entry (a model tfship did not train) gets it derived from the
signature, so no protocol answers 500 for a missing key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.models.runtimes.base import Signature, TensorSpec
from service.models.version_facts import version_facts
from tfship.version_metadata import VersionMetadata

Predict = Callable[[dict[str, Any], list[str] | None], dict[str, Any]]

# numpy dtype -> TF Serving's DataType name, for signature definitions derived from a
# signature (metadata.json of tfship versions carries the SavedModel's own).
_TF_DTYPES = {
    "float16": "DT_HALF",
    "float32": "DT_FLOAT",
    "float64": "DT_DOUBLE",
    "int8": "DT_INT8",
    "int16": "DT_INT16",
    "int32": "DT_INT32",
    "int64": "DT_INT64",
    "uint8": "DT_UINT8",
    "uint16": "DT_UINT16",
    "uint32": "DT_UINT32",
    "uint64": "DT_UINT64",
    "bool": "DT_BOOL",
    "object": "DT_STRING",
}
# DataType name -> numpy dtype name, for SignatureDefs read from a foreign SavedModel.
NUMPY_OF_TF_DTYPE = {tf_name: numpy_name for numpy_name, tf_name in _TF_DTYPES.items()}


@dataclass(frozen=True, slots=True)
class VersionStatus:
    """One version's state for the status APIs (TF Serving's ManagerState names)."""

    version: int
    state: str
    error_code: str
    error_message: str


@dataclass(frozen=True, slots=True)
class ModelView:
    name: str
    version: int
    runtime: str  # "onnx" or "savedmodel"
    signature: Signature
    task: str  # "classification", "regression" or "unknown"
    class_names: tuple[str, ...]
    # False for a version without metadata.json (a TF Serving or Triton layout): served
    # as found, with no checksum to check its files against.
    verified: bool
    # TF Serving's SignatureDefMap as JSON (``{"serving_default": {...}}``).
    signature_defs: Mapping[str, Any]
    # The held version's predict (rows limit, batching, compute timing); the dataplane
    # calls it, front doors go through the dataplane.
    run: Predict = field(repr=False, compare=False)
    # Views of the artifact's other signatures that the runtime runs as themselves (a
    # SavedModel's, by signature_name), aliases of the served one excepted.
    others: Mapping[str, ModelView] = field(default_factory=dict, repr=False, compare=False)
    # metadata's baseline_profile (what the training data looked like), for drift scores of
    # the served signature; None without one, and for the other signatures.
    drift_profile: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)
    # What the browser console shows of the version (service/models/version_facts.py).
    facts: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(
        cls,
        name: str,
        version: int,
        runtime: str,
        signature: Signature,
        metadata: VersionMetadata,
        verified: bool,
        run: Predict,
        other_signatures: Mapping[str, tuple[Signature, Predict]] | None = None,
    ) -> ModelView:
        defs = metadata.tf_serving_signature_def or signature_defs_of(signature)
        served = with_aliases(signature, defs)
        view = cls(
            name,
            version,
            runtime,
            served,
            metadata.task,
            metadata.class_names,
            verified,
            defs,
            run,
            drift_profile=_profile_of(metadata),
            facts=version_facts(metadata),
        )
        same = served.aliases.get("predict", frozenset())
        others = {
            # Another function: its own inputs and outputs, no task or class names.
            other: dataclasses.replace(
                view,
                signature=sig,
                task="unknown",
                class_names=(),
                run=other_run,
                drift_profile=None,
            )
            for other, (sig, other_run) in (other_signatures or {}).items()
            if other not in same
        }
        return dataclasses.replace(view, others=others) if others else view

    def takes_numbers_only(self) -> bool:
        """No signature it runs has a string input (``Signature.takes_numbers_only``):
        a predict request may name any of them."""
        return all(v.signature.takes_numbers_only for v in (self, *self.others.values()))

    def signature_named(self, requested: object) -> ModelView:
        """The view that runs the signature a predict request names: another signature of
        the artifact, or this one (whose name checks then judge the request)."""
        if isinstance(requested, str) and requested in self.others:
            return self.others[requested]
        return self


def _profile_of(metadata: VersionMetadata) -> Mapping[str, Any] | None:
    profile = metadata.record.get("baseline_profile")
    return profile if isinstance(profile, Mapping) else None


@dataclass(frozen=True, slots=True)
class ServedViews:
    """The views a model answers requests with now (its AVAILABLE versions): what a
    description of the server's API (``/openapi.json``) is built from."""

    name: str
    # What a request naming no version gets; None while no version is AVAILABLE.
    default: ModelView | None
    versions: Mapping[int, ModelView]
    # Labels whose version is AVAILABLE, each with that version's view.
    labels: Mapping[str, ModelView]


_METHODS = {
    "predict": "tensorflow/serving/predict",
    "classify": "tensorflow/serving/classify",
    "regress": "tensorflow/serving/regress",
}


def with_aliases(signature: Signature, defs: Mapping[str, Any]) -> Signature:
    """The signature with the other SignatureDef names a request may use for it.

    A predict signature with the same inputs and outputs (Keras exports ``serve`` beside
    ``serving_default``) is the same function: usable for every API. A classify or regress
    signature (tfship's ``classification``/``regression``, parsing tf.Examples) is usable
    for that API, since the server parses examples into the served signature's inputs.
    """
    same = []
    for name, definition in defs.items():
        if name == signature.name or not isinstance(definition, Mapping):
            continue
        if definition.get("method_name", _METHODS["predict"]) == _METHODS["predict"] and (
            set(definition.get("inputs", {})) == set(signature.input_names)
            and set(definition.get("outputs", {})) == set(signature.output_names)
        ):
            same.append(name)
    aliases = {
        api: frozenset(same)
        | {
            n
            for n, d in defs.items()
            if isinstance(d, Mapping) and api != "predict" and d.get("method_name") == method
        }
        for api, method in _METHODS.items()
    }
    aliases["all"] = frozenset(defs)
    return dataclasses.replace(signature, aliases=aliases)


def _tensor_info(spec: TensorSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "dtype": _TF_DTYPES.get(np.dtype(spec.dtype).name, "DT_INVALID"),
        "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in spec.shape]},
    }


def signature_defs_of(signature: Signature) -> dict[str, Any]:
    """A TF Serving signature definition for a version that did not bring one."""
    return {
        signature.name: {
            "inputs": {spec.name: _tensor_info(spec) for spec in signature.inputs},
            "outputs": {spec.name: _tensor_info(spec) for spec in signature.outputs},
            "method_name": "tensorflow/serving/predict",
        }
    }
