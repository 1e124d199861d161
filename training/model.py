"""Model stage: preprocessing layers (inside the graph) followed by the architecture."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from training.config import ModelConfig, PreprocessingConfig

INPUT_NAME = "pixels"


def build_preprocessing(
    config: PreprocessingConfig, x_train: np.ndarray
) -> tuple[keras.layers.Layer | None, dict[str, Any]]:
    """The scaling layer and a description of it for metadata.json.

    Adapted on the train split only, so validation and test stay unseen.
    """
    if config.scaling == "normalization":
        layer = keras.layers.Normalization(axis=None, name="normalize")
        layer.adapt(x_train)
        mean = float(np.asarray(layer.mean).reshape(-1)[0])
        variance = float(np.asarray(layer.variance).reshape(-1)[0])
        return layer, {
            "layer": "Normalization",
            "mean": mean,
            "variance": variance,
            "adapted_on": "train split",
        }
    if config.scaling == "rescaling":
        layer = keras.layers.Rescaling(config.rescale, offset=config.offset, name="rescale")
        return layer, {"layer": "Rescaling", "scale": config.rescale, "offset": config.offset}
    return None, {"layer": None}


def build_model(
    config: ModelConfig,
    input_shape: tuple[int, ...],
    num_classes: int,
    preprocessing: keras.layers.Layer | None,
) -> keras.Model:
    inputs = keras.Input(shape=input_shape, name=INPUT_NAME)
    h = preprocessing(inputs) if preprocessing is not None else inputs
    for i, filters in enumerate(config.conv_filters):
        h = keras.layers.Conv2D(
            filters,
            config.kernel_size,
            padding="same",
            activation=config.activation,
            name=f"conv{i + 1}",
        )(h)
    # Digits are 8x8: one pooling step keeps enough spatial detail.
    h = keras.layers.MaxPooling2D(2, name="pool")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    for i, units in enumerate(config.dense_units):
        h = keras.layers.Dense(units, activation=config.activation, name=f"dense{i + 1}")(h)
        if config.dropout:
            h = keras.layers.Dropout(config.dropout, name=f"dropout{i + 1}")(h)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(h)
    return keras.Model(inputs, outputs, name="classifier")
