"""Classify, regress and top-k: what a model's task makes of its predict outputs.

TF Serving runs classify and regress only for SavedModels exported with such signatures.
tfship versions carry their task and class names instead (in the model view), so every
runtime answers them: the predict signature runs once for the whole batch, and its first
output becomes (class name, score) pairs for a classification model or one value per row
for a regression model. Protocol-neutral: front doors decode examples into inputs
(``codecs/example_features.py``) and encode what these return.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from service.codecs.json_body import whole_number
from service.codecs.tensor_checks import shape_text
from service.errors import InvalidArgument
from service.models.model_view import ModelView

# Scores stay numpy scalars of the output's dtype, so JSON prints a float32 score at
# float32's precision (0.99999994, not 0.9999999403953552).
Classes = list[list[tuple[str, np.floating]]]


def _first_output(model: ModelView, outputs: Mapping[str, Any]) -> tuple[str, np.ndarray]:
    name = model.signature.outputs[0].name
    return name, np.asarray(outputs[name])


def classifications(model: ModelView, outputs: Mapping[str, Any]) -> Classes:
    """Per row: (class name, score) for every class, in the model's class order."""
    classes, scores = _class_scores(model, outputs)
    return [list(zip(classes, row, strict=True)) for row in scores]


def _class_scores(model: ModelView, outputs: Mapping[str, Any]) -> tuple[list[str], np.ndarray]:
    """The class names and the [batch, classes] scores they name."""
    if model.task != "classification":
        raise InvalidArgument(
            f"model '{model.name}' is a {model.task} model; classify needs a classification "
            "model (use predict" + (" or regress)" if model.task == "regression" else ")")
        )
    output, scores = _first_output(model, outputs)
    classes = list(model.class_names) or [str(c) for c in range(scores.shape[-1])]
    if scores.ndim != 2 or scores.shape[1] != len(classes):
        raise InvalidArgument(
            f"model '{model.name}': output '{output}' has shape "
            f"{shape_text(scores.shape)}, not [batch, {len(classes)} classes]"
        )
    return classes, scores


def parse_top_k(value: Any, model: ModelView) -> int:
    """The request's ``top_k``: a positive integer, at most the number of classes."""
    if model.task != "classification":
        raise InvalidArgument(
            f"'top_k' needs a classification model; model '{model.name}' is a {model.task} model"
        )
    given = value
    value = whole_number(given)
    if value is None or value < 1:
        raise InvalidArgument(f"'top_k' must be a positive integer, got {given!r}")
    count = len(model.class_names)
    if count and value > count:
        raise InvalidArgument(f"'top_k' is {value}, the model has {count} classes")
    return value


def top_k(model: ModelView, outputs: Mapping[str, Any], k: int) -> Classes:
    """Per row: the ``k`` best (class name, score) pairs, best first (ties: class order)."""
    classes, scores = _class_scores(model, outputs)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    best = np.take_along_axis(scores, order, axis=1)
    return [
        [(classes[i], score) for i, score in zip(indices.tolist(), row, strict=True)]
        for indices, row in zip(order, best, strict=True)
    ]


def regressions(model: ModelView, outputs: Mapping[str, Any]) -> list[np.floating]:
    """One value per row."""
    if model.task != "regression":
        raise InvalidArgument(
            f"model '{model.name}' is a {model.task} model; regress needs a regression model "
            "(use predict" + (" or classify)" if model.task == "classification" else ")")
        )
    output, values = _first_output(model, outputs)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise InvalidArgument(
            f"model '{model.name}': output '{output}' has shape "
            f"{shape_text(values.shape)}; regress needs one value per example"
        )
    return list(values)  # numpy scalars of the output's dtype, as the scores above
