"""Data stage: load the configured dataset and split it (stratified, fixed seed)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.config import DataConfig
from training.errors import DataError


@dataclass(frozen=True)
class Dataset:
    x: np.ndarray
    y: np.ndarray
    class_names: list[str]
    description: str


@dataclass(frozen=True)
class Splits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    description: str

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}


def load_dataset(config: DataConfig) -> Dataset:
    if config.source == "sklearn" and config.dataset == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        # Raw pixel intensities 0..16 with a channel axis, exactly what clients will send.
        x = bunch.images.astype(np.float32)[..., np.newaxis]
        y = bunch.target.astype(np.int64)
        names = [str(n) for n in bunch.target_names]
        return Dataset(x, y, names, "scikit-learn bundled digits (8x8 grey, 0-16)")
    raise DataError(f"data: unsupported source/dataset {config.source}/{config.dataset}")


def split_dataset(data: Dataset, config: DataConfig, seed: int) -> Splits:
    from sklearn.model_selection import train_test_split

    fractions = config.split
    classes, counts = np.unique(data.y, return_counts=True)
    if len(classes) < 2:
        raise DataError("the label column has a single class; nothing to learn")
    # Stratification needs every class represented in each split.
    smallest = min(fractions.train, fractions.val, fractions.test) * counts.min()
    if smallest < 1:
        raise DataError(
            f"too few rows for the split: class {classes[counts.argmin()]} has {counts.min()} "
            f"rows, fewer than one per split with fractions {fractions}"
        )
    x_train, x_rest, y_train, y_rest = train_test_split(
        data.x, data.y, train_size=fractions.train, stratify=data.y, random_state=seed
    )
    val_share = fractions.val / (fractions.val + fractions.test)
    x_val, x_test, y_val, y_test = train_test_split(
        x_rest, y_rest, train_size=val_share, stratify=y_rest, random_state=seed
    )
    return Splits(
        x_train, y_train, x_val, y_val, x_test, y_test, data.class_names, data.description
    )
