"""Training under MultiWorkerMirroredStrategy: ``strategy.run`` steps, Keras' callbacks.

Keras 3's ``model.fit`` fails under MultiWorkerMirroredStrategy ("Attempt to convert a
value (PerReplica...)", keras-team/keras#20585), while a step run with ``strategy.run`` over
``experimental_distribute_dataset`` trains every worker in lock-step. This loop does that
and drives the very callbacks ``model.fit`` would get (early stopping, checkpoints, backup,
CSV history, TensorBoard, learning-rate plateau, pruning) with the same logs, so a run
behaves the same whichever strategy trains it.

``fit.batch_size`` stays the global batch: each of N replicas takes 1/N of it, and the
gradients are summed across workers, so the optimization matches one worker's.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from training.config import TrainConfig
from training.data import Arrays, Splits, model_input

_EVAL_BATCH = 256


def _loss_object(task: str) -> keras.losses.Loss:
    if task == "classification":
        return keras.losses.SparseCategoricalCrossentropy(reduction=None)
    return keras.losses.MeanSquaredError(reduction=None)


def _metrics(task: str, outputs: np.ndarray, labels: np.ndarray, loss: float) -> dict:
    if task == "classification":
        return {"accuracy": float((outputs.argmax(axis=1) == labels).mean()), "loss": loss}
    error = outputs.reshape(-1) - labels.reshape(-1)
    return {
        "loss": loss,
        "mae": float(np.abs(error).mean()),
        "rmse": float(np.sqrt((error**2).mean())),
    }


def evaluate_local(model: keras.Model, x: Arrays, y: np.ndarray, task: str) -> dict[str, float]:
    """Loss and metrics on a split, computed by this worker alone (no collectives: every
    worker holds the same weights, so every worker gets the same numbers)."""
    loss_object = _loss_object(task)
    outputs, losses = [], []
    for start in range(0, len(y), _EVAL_BATCH):
        batch = {k: v[start : start + _EVAL_BATCH] for k, v in x.items()}
        predicted = model(model_input(batch), training=False)
        target = y[start : start + _EVAL_BATCH]
        losses.append(np.asarray(loss_object(target, predicted)))
        outputs.append(np.asarray(predicted))
    return _metrics(task, np.concatenate(outputs), y, float(np.concatenate(losses).mean()))


def _in_memory(
    splits: Splits, config: TrainConfig, global_batch: int, options: tf.data.Options
) -> tuple[tf.data.Dataset, int]:
    weights = np.ones(len(splits.y_train), dtype=np.float32)
    if splits.class_weight:
        weights = np.array([splits.class_weight[int(c)] for c in splits.y_train], np.float32)
    data = tf.data.Dataset.from_tensor_slices(
        (model_input(splits.x_train), splits.y_train, weights)
    )
    # Every worker has the whole split, shuffled alike with the seed, and takes its share of
    # each global batch; whole batches only, so all workers run the same number of steps.
    data = data.cache().shuffle(len(splits.y_train), seed=config.seed)
    data = data.batch(global_batch, drop_remainder=True).repeat().prefetch(tf.data.AUTOTUNE)
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return data, len(splits.y_train) // global_batch


def _streamed(
    splits: Splits,
    config: TrainConfig,
    global_batch: int,
    strategy: Any,
    options: tf.data.Options,
) -> tuple[tf.data.Dataset, int]:
    """The train split from disk: each worker reads its own files when there are files
    enough for every worker, else all of them, keeping its share of the batches. The stream
    repeats and each epoch is a fixed number of steps, the same on every worker, from the
    scan's row count, so no worker runs out of batches while another waits on it."""
    from training.stages import say

    plan = splits.stream
    weights = splits.class_weight or {i: 1.0 for i in range(len(plan.class_names))}
    resolver = strategy.cluster_resolver
    workers = resolver.cluster_spec().num_tasks("worker")
    files = plan.layout.files
    policy = tf.data.experimental.AutoShardPolicy
    if len(files) >= workers:
        files = files[resolver.task_id :: workers]
        options.experimental_distribute.auto_shard_policy = policy.OFF
        shown = f"its files {', '.join(p.name for p in files)}"
    else:
        options.experimental_distribute.auto_shard_policy = policy.DATA
        shown = f"all {len(files)} file(s), keeping its share of the batches"
    say(3, f"fit: worker {resolver.task_id} streams {shown}")
    data = plan.train_batches(
        global_batch,
        config.seed,
        class_weight=weights,
        repeat=True,
        drop_remainder=True,
        files=files,
    )
    if plan.layout.regression:
        data = data.map(lambda x, y: (x, y, tf.ones_like(y)))
    return data, max(1, plan.rows["train"] // global_batch)


def fit_multi_worker(
    model: keras.Model,
    splits: Splits,
    config: TrainConfig,
    callbacks: list[keras.callbacks.Callback],
    strategy: Any,
    verbose: int,
) -> None:
    fit = config.fit
    task = config.task
    global_batch = fit.batch_size
    if global_batch % strategy.num_replicas_in_sync:
        global_batch += strategy.num_replicas_in_sync - global_batch % strategy.num_replicas_in_sync
    options = tf.data.Options()
    if splits.stream is not None:
        data, steps = _streamed(splits, config, global_batch, strategy, options)
    else:
        data, steps = _in_memory(splits, config, global_batch, options)
    distributed = strategy.experimental_distribute_dataset(data.with_options(options))
    loss_object = _loss_object(task)
    optimizer = model.optimizer

    @tf.function
    def train_step(batch: Any) -> Any:
        def step(x: Any, y: Any, w: Any) -> Any:
            with tf.GradientTape() as tape:
                predicted = model(x, training=True)
                per_example = loss_object(y, predicted) * w
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
                if model.losses:
                    loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
            return loss

        per_replica = strategy.run(step, args=batch)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    callback_list = keras.callbacks.CallbackList(
        callbacks, add_history=True, model=model, epochs=fit.epochs, steps=steps, verbose=0
    )
    model.stop_training = False
    callback_list.on_train_begin()
    # BackupAndRestore sets this when it restored a backup, as model.fit reads it.
    first = int(getattr(model, "_initial_epoch", 0) or 0)
    logs: dict[str, float] = {}
    batches = iter(distributed)  # repeats: each epoch takes its ``steps`` batches
    for epoch in range(first, fit.epochs):
        started = time.monotonic()
        callback_list.on_epoch_begin(epoch)
        losses = []
        for index in range(steps):
            batch = next(batches)
            callback_list.on_train_batch_begin(index)
            loss = float(train_step(batch))
            losses.append(loss)
            callback_list.on_train_batch_end(index, {"loss": loss})
        train = evaluate_local(model, splits.x_train, splits.y_train, task)
        train["loss"] = float(np.mean(losses))  # the loss optimized, as model.fit reports it
        val = evaluate_local(model, splits.x_val, splits.y_val, task)
        logs = {**train, **{f"val_{k}": v for k, v in val.items()}}
        logs["learning_rate"] = float(np.asarray(optimizer.learning_rate))
        if verbose:
            shown = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items() if k != "learning_rate")
            seconds = time.monotonic() - started
            print(f"Epoch {epoch + 1}/{fit.epochs}", flush=True)
            print(f"{steps}/{steps} - {seconds:.0f}s - {shown}", file=sys.stdout, flush=True)
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
