"""Data stage: load, clean, split (stratified, fixed seed) and balance.

Statistics that cleaning needs (imputation values, outlier bounds) come from the train
split only, so validation and test stay unseen; what every step changed is counted for
the run report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from training.config import CleaningConfig, TrainConfig
from training.errors import DataError
from training.loaders import Dataset, load_dataset

Arrays = dict[str, np.ndarray]


@dataclass
class Splits:
    x_train: Arrays
    y_train: np.ndarray
    x_val: Arrays
    y_val: np.ndarray
    x_test: Arrays
    y_test: np.ndarray
    dataset: Dataset  # what was loaded (kind, names, class names); its arrays are not used
    cleaning: dict[str, Any] = field(default_factory=dict)
    class_weight: dict[int, float] | None = None
    # Rows of ``dataset`` (after the whole-row cleaning) in each split: cross-validation
    # folds the train and val rows again.
    rows: dict[str, np.ndarray] = field(default_factory=dict)
    # Distillation: the teacher's probabilities for the train and val rows.
    teacher_train: np.ndarray | None = None
    teacher_val: np.ndarray | None = None
    # data.streaming: the x/y arrays are samples; training reads the files by this
    # (stream_scan.StreamPlan), and sizes() are the whole splits'.
    stream: Any = None

    @property
    def class_names(self) -> list[str]:
        return self.dataset.class_names

    @property
    def description(self) -> str:
        return self.dataset.description

    def sizes(self) -> dict[str, int]:
        if self.stream is not None:
            return dict(self.stream.rows)
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}


def model_input(x: Arrays) -> Any:
    """What a Keras model with these inputs takes: the array itself for a single input,
    the dict of named arrays otherwise."""
    return next(iter(x.values())) if len(x) == 1 else x


def _take(x: Arrays, index: np.ndarray) -> Arrays:
    return {name: values[index] for name, values in x.items()}


def _missing_mask(values: np.ndarray) -> np.ndarray:
    """Per row: is any value missing (NaN/inf for numbers, None for categorical)?"""
    if values.dtype == object:
        return np.array([v is None for v in values])
    bad = ~np.isfinite(values)
    return bad.reshape(len(values), -1).any(axis=1)


def _row_keys(x: Arrays) -> list[bytes]:
    """A hashable key per row over every input, for finding duplicates."""
    parts = []
    for values in x.values():
        if values.dtype == object:
            parts.append([str(v).encode() for v in values])
        else:
            flat = np.ascontiguousarray(values.reshape(len(values), -1))
            parts.append([row.tobytes() for row in flat])
    return [b"\0".join(items) for items in zip(*parts, strict=True)]


def clean_rows(dataset: Dataset, config: CleaningConfig) -> dict[str, Any]:
    """Whole-row steps, before the split: duplicates and rows with missing values."""
    report: dict[str, Any] = {
        "rows_loaded": len(dataset) + dataset.missing_labels,
        "missing_label_dropped": dataset.missing_labels,
    }
    keep = np.ones(len(dataset), dtype=bool)
    if config.duplicates == "drop":
        seen: set[bytes] = set()
        for i, key in enumerate(_row_keys({**dataset.x, "__label": dataset.y})):
            if key in seen:
                keep[i] = False
            seen.add(key)
    report["duplicates_dropped"] = int((~keep).sum())
    missing = {name: _missing_mask(values) & keep for name, values in dataset.x.items()}
    missing_counts = {name: int(m.sum()) for name, m in missing.items() if m.any()}
    report["missing_values"] = missing_counts
    if missing_counts and config.missing == "error":
        listed = ", ".join(f"{name} ({count} rows)" for name, count in missing_counts.items())
        raise DataError(
            f"missing values in {listed}; set cleaning.missing to drop, mean, median "
            "or most_frequent"
        )
    dropped = 0
    if missing_counts and (config.missing == "drop" or dataset.kind in ("image", "sequence")):
        # Images and sequences have no column statistics to impute from: drop the row.
        any_missing = np.zeros(len(dataset), dtype=bool)
        for m in missing.values():
            any_missing |= m
        dropped = int(any_missing.sum())
        keep &= ~any_missing
    report["missing_rows_dropped"] = dropped
    dataset.x = _take(dataset.x, keep)
    dataset.y = dataset.y[keep]
    report["rows_kept"] = len(dataset.y)
    return report


def _impute(splits: Splits, config: CleaningConfig, categorical: list[str]) -> dict[str, int]:
    imputed: dict[str, int] = {}
    for name, train in splits.x_train.items():
        if train.ndim > 2:
            continue
        for column in range(1 if train.ndim == 1 else train.shape[1]):

            def view(x: Arrays, name: str = name, column: int = column) -> np.ndarray:
                return x[name] if x[name].ndim == 1 else x[name][:, column]

            values = view(splits.x_train)
            if name in categorical or config.missing == "most_frequent":
                present = [v for v in values if v is not None and v == v]
                kinds, counts = np.unique(np.array(present, dtype=values.dtype), return_counts=True)
                fill: Any = kinds[counts.argmax()] if len(kinds) else None
            elif config.missing == "mean":
                fill = float(np.nanmean(values))
            else:
                fill = float(np.nanmedian(values))
            label = name if train.ndim == 1 else f"{name}[{column}]"
            count = 0
            for x in (splits.x_train, splits.x_val, splits.x_test):
                target = view(x)
                mask = _missing_mask(target)
                count += int(mask.sum())
                target[mask] = fill
            if count:
                imputed[label] = count
    return imputed


def _clip_outliers(splits: Splits, config: CleaningConfig, categorical: list[str]) -> dict:
    clipped: dict[str, dict[str, float]] = {}
    k = config.outlier_threshold or (1.5 if config.outliers == "iqr" else 3.0)
    for name, train in splits.x_train.items():
        if name in categorical or train.ndim > 2:
            continue
        matrix = train.reshape(len(train), -1)
        for column in range(matrix.shape[1]):
            values = matrix[:, column]
            if config.outliers == "iqr":
                q1, q3 = np.percentile(values, [25, 75])
                low, high = q1 - k * (q3 - q1), q3 + k * (q3 - q1)
            else:
                mean, std = values.mean(), values.std()
                low, high = mean - k * std, mean + k * std
            outside = int(((values < low) | (values > high)).sum())
            if outside:
                matrix[:, column] = np.clip(values, low, high)
                label = name if train.ndim == 1 else f"{name}[{column}]"
                clipped[label] = {"rows": outside, "low": float(low), "high": float(high)}
        splits.x_train[name] = matrix.reshape(train.shape)
    return clipped


def split_dataset(dataset: Dataset, config: TrainConfig) -> Splits:
    from sklearn.model_selection import train_test_split

    fractions = config.data.split
    index = np.arange(len(dataset.y))
    stratify: np.ndarray | None = None
    if config.task == "classification":
        classes, counts = np.unique(dataset.y, return_counts=True)
        if len(classes) < 2:
            raise DataError("the labels hold a single class after cleaning; nothing to learn")
        # Stratification needs every class represented in each split.
        smallest = min(fractions.train, fractions.val, fractions.test) * counts.min()
        if smallest < 1:
            name = dataset.class_names[int(classes[counts.argmin()])]
            raise DataError(
                f"too few rows for the split: class {name!r} has {counts.min()} rows, fewer "
                f"than one per split with fractions train {fractions.train}, val "
                f"{fractions.val}, test {fractions.test}"
            )
        stratify = dataset.y
    elif min(fractions.train, fractions.val, fractions.test) * len(index) < 2:
        raise DataError(f"too few rows for the split: {len(index)} rows")
    train, rest = train_test_split(
        index, train_size=fractions.train, stratify=stratify, random_state=config.seed
    )
    val_share = fractions.val / (fractions.val + fractions.test)
    val, test = train_test_split(
        rest,
        train_size=val_share,
        stratify=None if stratify is None else stratify[rest],
        random_state=config.seed,
    )
    return _splits_of(dataset, train, val, test)


def _splits_of(dataset: Dataset, train: np.ndarray, val: np.ndarray, test: np.ndarray) -> Splits:
    # Copies: cleaning after the split writes into the train arrays.
    return Splits(
        {k: v.copy() for k, v in _take(dataset.x, train).items()},
        dataset.y[train],
        _take(dataset.x, val),
        dataset.y[val],
        _take(dataset.x, test),
        dataset.y[test],
        dataset,
        rows={"train": train, "val": val, "test": test},
    )


def _balance(splits: Splits, mode: str, seed: int) -> dict[str, Any]:
    counts = np.bincount(splits.y_train, minlength=len(splits.class_names))
    report: dict[str, Any] = {"mode": mode, "train_counts_before": counts.tolist()}
    if mode == "class_weight":
        from sklearn.utils.class_weight import compute_class_weight

        present = np.unique(splits.y_train)
        weights = compute_class_weight("balanced", classes=present, y=splits.y_train)
        splits.class_weight = {int(c): float(w) for c, w in zip(present, weights, strict=True)}
        report["class_weight"] = {splits.class_names[c]: w for c, w in splits.class_weight.items()}
    elif mode == "oversample":
        rng = np.random.default_rng(seed)
        target = counts.max()
        extra = [
            rng.choice(np.flatnonzero(splits.y_train == c), target - n, replace=True)
            for c, n in enumerate(counts)
            if 0 < n < target
        ]
        if extra:
            added = np.concatenate(extra)
            order = np.concatenate([np.arange(len(splits.y_train)), added])
            rng.shuffle(order)
            splits.x_train = _take(splits.x_train, order)
            splits.y_train = splits.y_train[order]
        report["rows_added"] = int(sum(len(e) for e in extra))
        report["train_counts_after"] = np.bincount(splits.y_train).tolist()
    return report


def prepare_data(config: TrainConfig, say: Any = None) -> Splits:
    if config.data.streaming:
        from training.stream_scan import scan

        return scan(config, say)
    dataset = load_dataset(config)
    report = clean_rows(dataset, config.cleaning)
    splits = split_dataset(dataset, config)
    _clean_after_split(splits, config, report)
    return splits


def _clean_after_split(splits: Splits, config: TrainConfig, report: dict[str, Any]) -> None:
    """Imputation, outlier clipping and balance, from and on the train split only."""
    categorical = splits.dataset.categorical
    report["imputed"] = (
        _impute(splits, config.cleaning, categorical)
        if config.cleaning.missing not in ("error", "drop") and report["missing_values"]
        else {}
    )
    report["outliers"] = config.cleaning.outliers
    report["clipped_in_train"] = (
        _clip_outliers(splits, config.cleaning, categorical)
        if config.cleaning.outliers != "none"
        else {}
    )
    if config.task == "classification":
        report["balance"] = _balance(splits, config.data.balance, config.seed)
    splits.cleaning = report


def fold_splits(splits: Splits, config: TrainConfig, folds: int) -> list[Splits]:
    """k-fold cross-validation over the train and val rows (the test rows stay out).

    Fold k holds one k-th of them out as its "test" split; the rest is split into train
    and val in the run's train:val proportion (val for early stopping), and cleaned after
    the split exactly as the real run is, from the fold's own train rows: nothing of the
    held-out rows leaks into imputation, clipping or oversampling. Stratified for
    classification, shuffled with the run's seed.
    """
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

    dataset = splits.dataset
    pool = np.concatenate([splits.rows["train"], splits.rows["val"]])
    labels = dataset.y[pool]
    stratified = config.task == "classification"
    if stratified:
        counts = np.bincount(labels)
        smallest = int(counts[counts > 0].min())
        if smallest < folds:
            raise DataError(
                f"cross_validation.folds: {folds} folds need at least {folds} rows of every "
                f"class in the train and val splits; the smallest class has {smallest}"
            )
        folder: Any = StratifiedKFold(folds, shuffle=True, random_state=config.seed)
    else:
        folder = KFold(folds, shuffle=True, random_state=config.seed)
    fractions = config.data.split
    val_share = fractions.val / (fractions.train + fractions.val)
    result = []
    for kept, held in folder.split(pool, labels if stratified else None):
        train, val = train_test_split(
            pool[kept],
            test_size=val_share,
            stratify=labels[kept] if stratified else None,
            random_state=config.seed,
        )
        fold = _splits_of(dataset, train, val, pool[held])
        _clean_after_split(fold, config, clean_rows_report(splits.cleaning))
        result.append(fold)
    return result


def clean_rows_report(report: dict[str, Any]) -> dict[str, Any]:
    """The whole-row part of a cleaning report (what happened before the split)."""
    return {k: report[k] for k in _WHOLE_ROW_STEPS if k in report}


_WHOLE_ROW_STEPS = (
    "rows_loaded",
    "missing_label_dropped",
    "duplicates_dropped",
    "missing_values",
    "missing_rows_dropped",
    "rows_kept",
)
