"""TF Serving request messages (PredictRequest, ClassificationRequest, RegressionRequest)
-> validated model inputs. Used by the gRPC service and by the warm-up file replay."""

from __future__ import annotations

from typing import Any

import numpy as np

from service.codecs import example_features
from service.codecs.tensor_checks import DeclaredLimits, check_rows
from service.codecs.tensor_proto import to_dtype, to_numpy
from service.codecs.tfserving_json import check_input_names
from service.errors import InvalidArgument
from service.models.runtimes.base import Signature


def predict_inputs(
    request: Any, signature: Signature, limits: DeclaredLimits
) -> tuple[dict[str, np.ndarray], list[str] | None]:
    """A PredictRequest -> (inputs of the signature's dtypes, outputs asked for or None)."""
    example_features.check_signature_name(request.model_spec.signature_name, signature, "predict")
    check_input_names(set(request.inputs), signature, "'inputs'")
    inputs = {}
    for spec in signature.inputs:
        label = f"input '{spec.name}'"
        array = to_numpy(request.inputs[spec.name], spec, label, limits)
        inputs[spec.name] = to_dtype(array, spec.dtype, label)
    return inputs, _output_filter(list(request.output_filter), signature)


def example_inputs(
    request: Any, signature: Signature, api: str, limits: DeclaredLimits
) -> dict[str, np.ndarray]:
    """A ClassificationRequest or RegressionRequest (``api``: classify, regress) -> the
    model's inputs."""
    example_features.check_signature_name(request.model_spec.signature_name, signature, api)
    examples, context = _examples(request.input, limits)
    return example_features.examples_to_inputs(examples, signature, context)


def _example_features(example: Any) -> dict[str, list[Any]]:
    features = {}
    for key, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        features[key] = list(getattr(feature, kind).value) if kind else []
    return features


def _examples(
    given: Any, limits: DeclaredLimits
) -> tuple[list[dict[str, list[Any]]], dict[str, list[Any]] | None]:
    """The request's examples, and the context features shared by all of them."""
    kind = given.WhichOneof("kind")
    if kind == "example_list":
        check_rows(len(given.example_list.examples), limits.max_rows)
        return [_example_features(e) for e in given.example_list.examples], None
    if kind == "example_list_with_context":
        with_context = given.example_list_with_context
        # Before any is copied: the context is merged into every example.
        check_rows(len(with_context.examples), limits.max_rows)
        return (
            [_example_features(e) for e in with_context.examples],
            _example_features(with_context.context),
        )
    raise InvalidArgument(
        "request 'input' is empty: send example_list or example_list_with_context"
    )


def _output_filter(names: list[str], signature: Signature) -> list[str] | None:
    if not names:
        return None
    known = set(signature.output_names)
    for name in names:
        if name not in known:
            raise InvalidArgument(
                f"output_filter: unknown output '{name}'; the model's outputs are "
                + ", ".join(f"'{n}'" for n in signature.output_names)
            )
    if len(set(names)) != len(names):
        raise InvalidArgument("output_filter names an output twice")
    return names
