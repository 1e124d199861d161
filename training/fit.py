"""Fit stage: compile, then train on tf.data pipelines with the configured callbacks.

Callbacks: EarlyStopping (best weights restored), ModelCheckpoint (best weights on disk),
BackupAndRestore (a killed run resumes where it stopped), CSV history, TensorBoard, and
ReduceLROnPlateau when that schedule is chosen.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, replace
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from training.config import FitConfig, TrainConfig
from training.data import Arrays, Splits, model_input
from training.run_folder import RunFolder


@dataclass(frozen=True)
class FitResult:
    epochs_run: int  # over every attempt of this run, a resumed one included
    best_epoch: int
    resumed_from_epoch: int
    history: dict[str, list[float]]
    pruning: dict[str, Any] | None = None  # achieved sparsity, when pruning was on


def _learning_rate(config: FitConfig, steps_per_epoch: int) -> Any:
    schedule = config.schedule
    if schedule.kind == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(
            config.learning_rate, schedule.decay_steps, schedule.decay_rate
        )
    if schedule.kind == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            config.learning_rate, config.epochs * steps_per_epoch, alpha=schedule.alpha
        )
    return config.learning_rate


def _optimizer(config: FitConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    rate = _learning_rate(config, steps_per_epoch)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(rate)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(rate, momentum=config.momentum)
    return keras.optimizers.RMSprop(rate)


def compile_model(
    model: keras.Model, config: TrainConfig, steps_per_epoch: int, distilled: bool = False
) -> None:
    if distilled:
        from training import distill

        loss: Any = distill.loss(config.distill.temperature, config.distill.alpha)
        metrics: list[Any] = [distill.accuracy]
    elif config.task == "classification":
        loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
    else:
        loss = "mse"
        metrics = ["mae", keras.metrics.RootMeanSquaredError(name="rmse")]
    model.compile(optimizer=_optimizer(config.fit, steps_per_epoch), loss=loss, metrics=metrics)


def make_dataset(
    x: Arrays, y: np.ndarray, batch_size: int, shuffle_seed: int | None = None
) -> tf.data.Dataset:
    """Batches for fit/evaluate: cached after the first pass, prefetched, shuffled if asked."""
    data = tf.data.Dataset.from_tensor_slices((model_input(x), y)).cache()
    if shuffle_seed is not None:
        data = data.shuffle(len(y), seed=shuffle_seed, reshuffle_each_iteration=True)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def read_history(path: Any) -> dict[str, list[float]]:
    """The CSV history over every attempt; an epoch logged twice (killed between the backup
    and the log line) keeps its last row."""
    rows: dict[int, dict[str, str]] = {}
    try:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                rows[int(row["epoch"])] = row
    except FileNotFoundError:
        return {}
    history: dict[str, list[float]] = {}
    for epoch in sorted(rows):
        for key, value in rows[epoch].items():
            if key != "epoch":
                history.setdefault(key, []).append(float(value))
    return history


# The learning rate's factor once frozen layers thaw (Keras' transfer-learning guide uses a
# "very low" rate for this phase).
THAW_RATE = 0.1


def fit_model(
    model: keras.Model,
    splits: Splits,
    config: TrainConfig,
    run: RunFolder,
    verbose: int = 2,
    strategy: Any = None,
    frozen: list[str] | None = None,
) -> FitResult:
    """Compile and train ``model`` (built in ``strategy``'s scope when there is one).

    ``frozen``: layers kept fixed for the first ``init_from.unfreeze_after`` epochs (all of
    them when 0): a fine-tuning run trains its new head first, then everything.
    """
    fit = config.fit
    steps_per_epoch = math.ceil(splits.sizes()["train"] / fit.batch_size)
    frozen = frozen or []
    for name in frozen:
        model.get_layer(name).trainable = False
    distilled = splits.teacher_train is not None
    compile_model(model, config, steps_per_epoch, distilled)
    monitor = fit.early_stopping.monitor
    run.checkpoint.parent.mkdir(parents=True, exist_ok=True)
    pruning = config.compress.pruning
    pruned = pruning.target_sparsity > 0
    callbacks: list[keras.callbacks.Callback] = []
    if fit.schedule.kind == "plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=monitor,
                factor=fit.schedule.factor,
                patience=fit.schedule.patience,
                min_lr=fit.schedule.min_learning_rate,
            )
        )
    callbacks += [
        keras.callbacks.EarlyStopping(
            monitor=monitor,
            patience=fit.early_stopping.patience,
            min_delta=fit.early_stopping.min_delta,
            restore_best_weights=True,
            # While pruning ramps up, a denser epoch would always look best.
            start_from_epoch=config.pruning_end_epoch() if pruned else 0,
        ),
        keras.callbacks.ModelCheckpoint(
            str(run.checkpoint), monitor=monitor, save_best_only=True, save_weights_only=True
        ),
        keras.callbacks.CSVLogger(str(run.history_csv), append=True),
    ]
    if pruned:
        from training.pruning import MagnitudePruning

        callbacks.append(
            MagnitudePruning(
                pruning.target_sparsity,
                begin_step=pruning.begin_epoch * steps_per_epoch,
                end_step=config.pruning_end_epoch() * steps_per_epoch,
                frequency=pruning.frequency_steps,
            )
        )
    # After the log line, the checkpoint and the masks, so a backed-up epoch is complete.
    callbacks.append(keras.callbacks.BackupAndRestore(str(run.backup)))
    if fit.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(run.tensorboard)))
    resumed_from = run.backed_up_epochs()
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        from training.multi_worker import fit_multi_worker

        fit_multi_worker(model, splits, config, callbacks, strategy, verbose)
    else:
        y_train, y_val = splits.y_train, splits.y_val
        if distilled:
            from training import distill

            assert splits.teacher_val is not None
            y_train = distill.targets(y_train, splits.teacher_train)
            y_val = distill.targets(y_val, splits.teacher_val)
        if splits.stream is not None:
            # The whole train split from disk, every epoch (x_train is only its sample).
            train = splits.stream.train_batches(fit.batch_size, config.seed)
        else:
            train = make_dataset(splits.x_train, y_train, fit.batch_size, config.seed)
        val = make_dataset(splits.x_val, y_val, fit.batch_size)

        def run_fit(first: int, last: int, these: list[keras.callbacks.Callback]) -> None:
            model.fit(
                train,
                validation_data=val,
                initial_epoch=first,
                epochs=last,
                class_weight=splits.class_weight,
                callbacks=these,
                shuffle=False,  # the dataset shuffles itself, with the run's seed
                verbose=verbose,  # 2: one line per epoch, no redrawn bar in logs
            )

        thaw = config.init_from.unfreeze_after
        first = 0
        if frozen and 0 < thaw < fit.epochs and not resumed_from:
            # The head alone first, logged like any epoch; early stopping and the backup
            # watch the whole-model phase. A run resumed from its backup is past this.
            logger = [c for c in callbacks if isinstance(c, keras.callbacks.CSVLogger)]
            run_fit(0, thaw, logger)
            first = thaw
        if frozen and 0 < thaw < fit.epochs:
            for name in frozen:
                model.get_layer(name).trainable = True
            # A trainable change needs a new compile; the loaded layers then move slowly,
            # so as not to wreck what they learned before the new head has settled.
            slower = replace(config, fit=replace(fit, learning_rate=fit.learning_rate * THAW_RATE))
            compile_model(model, slower, steps_per_epoch, distilled)
        run_fit(first, fit.epochs, callbacks)
    history = read_history(run.history_csv)
    monitored = history.get(monitor, [])
    # Early stopping restores the best epoch of the phase it watched (after a thaw).
    watched = config.init_from.unfreeze_after if frozen else 0
    watched = watched if 0 < watched < len(monitored) else 0
    if monitored:
        pick = max if "acc" in monitor or monitor.endswith("r2") else min
        best = watched + monitored[watched:].index(pick(monitored[watched:])) + 1
    else:
        best = len(next(iter(history.values()), []))
    epochs = len(next(iter(history.values()), []))
    report = None
    if pruned:
        from training.pruning import sparsity_report

        report = {
            "target_sparsity": pruning.target_sparsity,
            "begin_epoch": pruning.begin_epoch,
            "end_epoch": config.pruning_end_epoch(),
            "schedule": "polynomial decay, power 3",
            **sparsity_report(model),
        }
    return FitResult(epochs, best, resumed_from, history, report)
