"""Model stage: named inputs, preprocessing layers (inside the graph), the architecture.

Everything a client would otherwise have to repeat lives in the graph: scaling adapted on
the train split, categorical lookups, and augmentation (which Keras runs only in training,
so the exported graph has none of it). Clients send raw values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from training.config import ModelConfig, PreprocessingConfig, TrainConfig
from training.data import Splits

CLASSIFICATION_OUTPUT = "probabilities"
REGRESSION_OUTPUT = "predictions"


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple[int, ...]  # without the batch axis
    dtype: str  # "float32" or "string"


def output_name(task: str) -> str:
    return CLASSIFICATION_OUTPUT if task == "classification" else REGRESSION_OUTPUT


def input_specs(splits: Splits) -> list[InputSpec]:
    categorical = set(splits.dataset.categorical)
    return [
        InputSpec(name, values.shape[1:], "string" if name in categorical else "float32")
        for name, values in splits.x_train.items()
    ]


def _statistics(train: np.ndarray, axis: int | None) -> dict[str, np.ndarray]:
    reduce = tuple(range(train.ndim)) if axis is None else tuple(range(train.ndim - 1))
    return {
        "mean": train.mean(axis=reduce, dtype=np.float64),
        "variance": train.var(axis=reduce, dtype=np.float64),
        "min": train.min(axis=reduce),
        "max": train.max(axis=reduce),
    }


def _scaler(
    config: PreprocessingConfig,
    stats: dict[str, np.ndarray],
    axis: int | None,
    name: str,
    adapted_on: str = "train split",
) -> tuple[keras.layers.Layer | None, dict[str, Any]]:
    """A scaling layer with its statistics fixed from the train split's, and its description."""
    if config.scaling == "rescaling":
        layer = keras.layers.Rescaling(config.rescale, offset=config.offset, name=name)
        return layer, {"layer": "Rescaling", "scale": config.rescale, "offset": config.offset}
    if config.scaling == "none":
        return None, {"layer": None}
    if config.scaling == "normalization":
        mean, variance = stats["mean"], stats["variance"]
    else:  # minmax: (x - min) / (max - min) is a normalization with these constants
        low, high = stats["min"], stats["max"]
        span = np.where(high > low, high - low, 1.0)
        mean, variance = low, np.square(span)
    layer = keras.layers.Normalization(
        axis=axis, mean=np.asarray(mean), variance=np.asarray(variance), name=name
    )
    info: dict[str, Any] = {"layer": "Normalization", "adapted_on": adapted_on}
    if config.scaling == "minmax":
        info.update(kind="minmax", min=np.ravel(mean).tolist(), max=np.ravel(mean + span).tolist())
    elif axis is None:
        info.update(mean=float(mean), variance=float(variance))
    else:
        info.update(mean=np.ravel(mean).tolist(), variance=np.ravel(variance).tolist())
    return layer, info


def _augmentation(config: PreprocessingConfig) -> tuple[list[keras.layers.Layer], dict]:
    aug = config.augmentation
    layers: list[keras.layers.Layer] = []
    if aug.rotation:
        layers.append(keras.layers.RandomRotation(aug.rotation, name="augment_rotation"))
    if aug.translation:
        layers.append(
            keras.layers.RandomTranslation(aug.translation, aug.translation, name="augment_shift")
        )
    if aug.zoom:
        layers.append(keras.layers.RandomZoom(aug.zoom, name="augment_zoom"))
    if aug.flip != "none":
        layers.append(keras.layers.RandomFlip(aug.flip, name="augment_flip"))
    return layers, {"layer": "augmentation", "active": "training only", **vars(aug)}


def _dense_block(h: Any, units: int, index: int, config: ModelConfig) -> Any:
    regularizer = keras.regularizers.L1L2(config.l1, config.l2) if config.l1 or config.l2 else None
    h = keras.layers.Dense(
        units,
        activation=None if config.batch_norm else config.activation,
        kernel_regularizer=regularizer,
        name=f"dense{index}",
    )(h)
    if config.batch_norm:
        h = keras.layers.BatchNormalization(name=f"dense{index}_bn")(h)
        h = keras.layers.Activation(config.activation, name=f"dense{index}_act")(h)
    if config.dropout:
        h = keras.layers.Dropout(config.dropout, name=f"dropout{index}")(h)
    return h


def _body(h: Any, config: ModelConfig) -> Any:
    if config.architecture == "cnn":
        for i, filters in enumerate(config.conv_filters, start=1):
            h = keras.layers.Conv2D(
                filters,
                config.kernel_size,
                padding="same",
                activation=None if config.batch_norm else config.activation,
                name=f"conv{i}",
            )(h)
            if config.batch_norm:
                h = keras.layers.BatchNormalization(name=f"conv{i}_bn")(h)
                h = keras.layers.Activation(config.activation, name=f"conv{i}_act")(h)
        # Small images (digits are 8x8): one pooling step keeps enough spatial detail.
        h = keras.layers.MaxPooling2D(2, name="pool")(h)
    elif config.architecture == "rnn":
        cell = keras.layers.LSTM if config.rnn_cell == "lstm" else keras.layers.GRU
        for i, units in enumerate(config.rnn_units, start=1):
            last = i == len(config.rnn_units)
            h = cell(units, return_sequences=not last, name=f"{config.rnn_cell}{i}")(h)
    if len(h.shape) > 2:
        h = keras.layers.Flatten(name="flatten")(h)
    for i, units in enumerate(config.dense_units, start=1):
        h = _dense_block(h, units, i, config)
    return h


def build_model(
    config: TrainConfig, splits: Splits
) -> tuple[keras.Model, list[InputSpec], list[dict[str, Any]]]:
    """The model, its input specs and a description of its preprocessing for metadata."""
    specs = input_specs(splits)
    pre = config.preprocessing
    inputs = {s.name: keras.Input(shape=s.shape, dtype=s.dtype, name=s.name) for s in specs}
    described: list[dict[str, Any]] = []
    if splits.dataset.kind == "columns":
        numeric = [s.name for s in specs if s.dtype != "string"]
        parts = []
        if numeric:
            stacked = keras.layers.Concatenate(name="numeric")(
                [keras.layers.Reshape((1,), name=f"{n}_column")(inputs[n]) for n in numeric]
            )
            if splits.stream is not None:
                # The whole train split's, from the streaming pass (x_train is a sample).
                stats = splits.stream.statistics(numeric)
                adapted_on = f"train split, streamed ({splits.stream.rows['train']:,} rows)"
            else:
                stats = _statistics(np.stack([splits.x_train[n] for n in numeric], axis=1), -1)
                adapted_on = "train split"
            scaler, info = _scaler(pre, stats, -1, "scale", adapted_on)
            parts.append(scaler(stacked) if scaler else stacked)
            described.append({**info, "inputs": numeric})
        for spec in specs:
            if spec.dtype != "string":
                continue
            if splits.stream is not None:
                vocabulary = splits.stream.vocabulary[spec.name]
            else:
                vocabulary = sorted({str(v) for v in splits.x_train[spec.name]})
            lookup = keras.layers.StringLookup(
                vocabulary=vocabulary, output_mode="one_hot", name=f"{spec.name}_lookup"
            )
            parts.append(lookup(inputs[spec.name]))
            described.append(
                {
                    "layer": "StringLookup",
                    "input": spec.name,
                    "vocabulary": vocabulary,
                    "unknown_values": "one extra slot",
                }
            )
        h = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="features")(parts)
    else:
        ((name, train),) = splits.x_train.items()
        axis = None if splits.dataset.kind == "image" and not pre.per_feature else -1
        # Digits' layer keeps its historical name; metadata readers look for "Normalization".
        name_of_layer = "normalize" if axis is None else "scale"
        scaler, info = _scaler(pre, _statistics(train, axis), axis, name_of_layer)
        h = scaler(inputs[name]) if scaler else inputs[name]
        described.append(info)
        if splits.dataset.kind == "image" and pre.augmentation.any():
            layers, info = _augmentation(pre)
            for layer in layers:
                h = layer(h)
            described.append(info)
    h = _body(h, config.model)
    if config.task == "classification":
        out = keras.layers.Dense(
            len(splits.class_names),
            activation="softmax",
            dtype="float32",
            name=CLASSIFICATION_OUTPUT,
        )(h)
    else:
        out = keras.layers.Dense(1, dtype="float32", name=REGRESSION_OUTPUT)(h)
    model_inputs: Any = inputs if len(inputs) > 1 else next(iter(inputs.values()))
    return keras.Model(model_inputs, out, name=config.task), specs, described
