"""Fit stage: compile and train with early stopping (best weights restored)."""

from __future__ import annotations

from dataclasses import dataclass

import keras

from training.config import FitConfig
from training.data import Splits


@dataclass(frozen=True)
class FitResult:
    epochs_run: int
    best_epoch: int
    history: dict[str, list[float]]


def _optimizer(config: FitConfig) -> keras.optimizers.Optimizer:
    if config.optimizer == "adam":
        return keras.optimizers.Adam(config.learning_rate)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(config.learning_rate, momentum=0.9)
    return keras.optimizers.RMSprop(config.learning_rate)


def fit_model(model: keras.Model, splits: Splits, config: FitConfig) -> FitResult:
    model.compile(
        optimizer=_optimizer(config),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    stopping = keras.callbacks.EarlyStopping(
        monitor=config.early_stopping.monitor,
        patience=config.early_stopping.patience,
        min_delta=config.early_stopping.min_delta,
        restore_best_weights=True,
    )
    history = model.fit(
        splits.x_train,
        splits.y_train,
        validation_data=(splits.x_val, splits.y_val),
        batch_size=config.batch_size,
        epochs=config.epochs,
        callbacks=[stopping],
        verbose=2,  # one line per epoch: progress without a redrawn bar in logs
    )
    values = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    monitored = values.get(config.early_stopping.monitor, [])
    if monitored:
        pick = max if "acc" in config.early_stopping.monitor else min
        best = monitored.index(pick(monitored)) + 1
    else:
        best = len(history.epoch)
    return FitResult(epochs_run=len(history.epoch), best_epoch=best, history=values)
