"""Knowledge distillation: a smaller student learns from a published teacher's soft targets.

``distill: {teacher: {model: NAME, version: N}, temperature: T, alpha: A}``: the teacher's
class probabilities on the train and val rows are computed once (its SavedModel, on the
same inputs), and the student trains on

    A * cross-entropy(label, student) + (1 - A) * T^2 * KL(teacher_T || student_T)

where ``x_T`` softens probabilities by the temperature (softmax(log x / T), the same as
softmax(logits / T)); T^2 keeps the soft term's gradients on the scale of the hard one
(Hinton et al., 2015). The labels and the teacher's probabilities travel together as the
fit's targets, so every callback (early stopping, checkpoints, resume) works unchanged.
The student is an ordinary model: serving never knows it was distilled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from training.config import TrainConfig
from training.errors import ConfigError
from training.published import find_published


@dataclass(frozen=True)
class Teacher:
    name: str
    version: int
    folder: Path
    parameters: int
    checksums: dict[str, str]
    predict: Any  # Arrays -> probabilities

    def record(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "version": self.version,
            "path": str(self.folder),
            "parameters": self.parameters,
            "checksums": self.checksums,
        }


def load_teacher(config: TrainConfig, model_dir: Path) -> Teacher:
    import tensorflow as tf

    wanted = config.distill.teacher
    found = find_published(model_dir, wanted.model, wanted.version, "distill.teacher")
    metadata = found.metadata
    if metadata.task != "classification":
        raise ConfigError(f"distill.teacher: {wanted.model} is not a classifier")
    loaded = tf.saved_model.load(str(found.folder))
    serve = loaded.signatures[metadata.signature_name]
    output = metadata.outputs[0].name
    names = [t.name for t in metadata.inputs]

    def predict(x: dict[str, np.ndarray]) -> np.ndarray:
        if sorted(x) != sorted(names):
            raise ConfigError(
                f"distill.teacher: {wanted.model} takes inputs {', '.join(names)}, the "
                f"student's data has {', '.join(x)}"
            )
        parts = []
        rows = len(next(iter(x.values())))
        for start in range(0, rows, 512):
            batch = {k: tf.constant(v[start : start + 512]) for k, v in x.items()}
            parts.append(serve(**batch)[output].numpy())
        return np.concatenate(parts).astype(np.float32)

    parameters = int(sum(np.prod(v.shape) for v in loaded.trainable_variables))
    return Teacher(found.name, found.version, found.folder, parameters, found.checksums(), predict)


def targets(labels: np.ndarray, soft: np.ndarray) -> np.ndarray:
    """The fit's targets: the label, then the teacher's probabilities, per row."""
    return np.concatenate([labels.reshape(-1, 1).astype(np.float32), soft], axis=1)


def _soften(probabilities: Any, temperature: float) -> Any:
    return keras.ops.softmax(keras.ops.log(keras.ops.clip(probabilities, 1e-7, 1.0)) / temperature)


def loss(temperature: float, alpha: float) -> Any:
    def distillation_loss(y_true: Any, y_pred: Any) -> Any:
        labels = keras.ops.cast(y_true[:, 0], "int32")
        hard = keras.losses.sparse_categorical_crossentropy(labels, y_pred)
        teacher, student = _soften(y_true[:, 1:], temperature), _soften(y_pred, temperature)
        soft = keras.ops.sum(
            teacher * (keras.ops.log(keras.ops.clip(teacher, 1e-7, 1.0))
                       - keras.ops.log(keras.ops.clip(student, 1e-7, 1.0))),
            axis=-1,
        )  # fmt: skip
        return alpha * hard + (1.0 - alpha) * temperature**2 * soft

    return distillation_loss


def accuracy(y_true: Any, y_pred: Any) -> Any:
    """Accuracy on the label column of distillation targets (named as the usual one, so the
    history, early stopping on val_accuracy and the report read the same)."""
    labels = keras.ops.cast(y_true[:, 0], "int32")
    predicted = keras.ops.cast(keras.ops.argmax(y_pred, axis=-1), "int32")
    return keras.ops.cast(keras.ops.equal(predicted, labels), "float32")
