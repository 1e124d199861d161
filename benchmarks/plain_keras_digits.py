"""The baseline for benchmarks/training.py: the digits model as a tutorial trains it by
hand, producing the same artifacts as ``tfship train`` (a SavedModel and an ONNX file).

    python benchmarks/plain_keras_digits.py OUT_DIR [--epochs 20]

Load the bundled digits, split 70/15/15 (stratified), Normalization adapted on the train
split, the same CNN as training/configs/digits.yaml, Adam, fit for exactly ``--epochs``,
evaluate, export the SavedModel, convert it with tf2onnx. No checks, callbacks, report,
parity or metadata: the work ``tfship train`` adds is what the benchmark measures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    keras.utils.set_random_seed(42)

    digits = load_digits()
    x = digits.images.astype(np.float32)[..., np.newaxis]
    y = digits.target
    x_train, x_rest, y_train, y_rest = train_test_split(
        x, y, train_size=0.7, stratify=y, random_state=42
    )
    x_val, x_test, y_val, y_test = train_test_split(
        x_rest, y_rest, train_size=0.5, stratify=y_rest, random_state=42
    )

    normalize = keras.layers.Normalization(axis=None)
    normalize.adapt(x_train)
    model = keras.Sequential(
        [
            keras.Input(shape=(8, 8, 1), name="pixels"),
            normalize,
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dropout(0.25),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.002),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        batch_size=32,
        epochs=args.epochs,
        verbose=2,
    )
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"test accuracy {accuracy:.4f}", file=sys.stderr)
    saved = args.out / "saved_model"
    model.export(str(saved), verbose=False)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tf2onnx.convert",
            "--saved-model",
            str(saved),
            "--opset",
            "17",
            "--output",
            str(args.out / "model.onnx"),
        ],
        check=True,
        capture_output=True,
    )


if __name__ == "__main__":
    main()
