"""Magnitude pruning for Keras 3, as a callback: no wrapper layers, nothing to strip.

tensorflow-model-optimization prunes only legacy tf_keras models, so this does the same job
for Keras 3. Every ``frequency_steps`` batches between the begin and end steps, each
prunable kernel gets a mask that zeroes its smallest-magnitude weights, with the sparsity
following TF-MOT's polynomial decay schedule:

    s(t) = s_target * (1 - (1 - (t - t_begin) / (t_end - t_begin)) ** 3)

After every batch the masks are applied again, so weights the optimizer moved stay zero.
The model itself never changes shape or gains variables: what is exported is a plain
Keras model whose pruned kernels hold exact zeros, which compress well with gzip.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from training.model import CLASSIFICATION_OUTPUT, REGRESSION_OUTPUT

POWER = 3
# The output layer is small and decides every class: it stays dense, as is usual.
_KEEP_DENSE = frozenset({CLASSIFICATION_OUTPUT, REGRESSION_OUTPUT})


def prunable_layers(model: keras.Model) -> list[keras.layers.Layer]:
    return [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.Dense | keras.layers.Conv2D)
        and layer.name not in _KEEP_DENSE
    ]


def sparsity_at(step: int, target: float, begin: int, end: int) -> float:
    if step < begin:
        return 0.0
    if step >= end:
        return target
    done = (step - begin) / (end - begin)
    return target * (1.0 - (1.0 - done) ** POWER)


def magnitude_mask(weights: np.ndarray, sparsity: float) -> np.ndarray:
    """1 for the weights that stay, 0 for the ``sparsity`` fraction of smallest magnitude."""
    count = round(sparsity * weights.size)
    if count <= 0:
        return np.ones_like(weights)
    magnitude = np.abs(weights).reshape(-1)
    # argpartition, not a threshold: ties at the threshold would prune too many or few.
    order = np.argpartition(magnitude, count - 1)[:count]
    mask = np.ones(weights.size, dtype=weights.dtype)
    mask[order] = 0
    return mask.reshape(weights.shape)


class MagnitudePruning(keras.callbacks.Callback):
    def __init__(self, target: float, begin_step: int, end_step: int, frequency: int) -> None:
        super().__init__()
        self.target = target
        self.begin_step = begin_step
        self.end_step = end_step
        self.frequency = frequency
        self.masks: dict[str, np.ndarray] = {}

    def on_train_begin(self, logs: Any = None) -> None:
        # A resumed run starts from weights already pruned: their zeros are the masks.
        for layer in prunable_layers(self.model):
            kernel = layer.kernel.numpy()
            self.masks[layer.name] = (kernel != 0).astype(kernel.dtype)

    def _step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        step = self._step()
        due = self.begin_step <= step <= self.end_step and (
            (step - self.begin_step) % self.frequency == 0 or step == self.end_step
        )
        if due:
            sparsity = sparsity_at(step, self.target, self.begin_step, self.end_step)
            for layer in prunable_layers(self.model):
                self.masks[layer.name] = magnitude_mask(layer.kernel.numpy(), sparsity)
        self._apply()

    def on_train_end(self, logs: Any = None) -> None:
        self._apply()

    def _apply(self) -> None:
        for layer in prunable_layers(self.model):
            mask = self.masks.get(layer.name)
            if mask is not None:
                layer.kernel.assign(layer.kernel.numpy() * mask)


def sparsity_report(model: keras.Model) -> dict[str, Any]:
    """Achieved sparsity per pruned layer and over all of them."""
    layers = {}
    total = zeros = 0
    for layer in prunable_layers(model):
        kernel = layer.kernel.numpy()
        count = int((kernel == 0).sum())
        layers[layer.name] = {
            "weights": int(kernel.size),
            "zeros": count,
            "sparsity": round(count / kernel.size, 4),
        }
        total += kernel.size
        zeros += count
    return {"layers": layers, "sparsity": round(zeros / total, 4) if total else 0.0}
