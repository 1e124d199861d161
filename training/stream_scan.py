"""The streaming data stage: one pass over the CSV files, then the plan the fit reads by.

The pass counts every split, collects what cleaning and preprocessing need from the train
split (per-column mean, variance, min and max with Chan's pairwise update; categorical
vocabularies with counts; label counts) and keeps a uniform sample of each split of at
most ``data.sample_rows`` rows (the rows with the smallest hash keys). Memory holds the
statistics and the three samples, whatever the size of the files.

The samples are what the rest of the run holds in memory: val for early stopping, test
for evaluation, export parity and quantization checks, train for calibration and the
drift profile. Training itself reads the whole train split from disk every epoch
(``stream_csv.train_batches``).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from training.config import TrainConfig
from training.data import Splits
from training.errors import DataError
from training.loaders import Dataset, encode_labels
from training.stream_csv import (
    KEY_FIELD,
    LABEL_FIELD,
    SPLIT_FIELD,
    SPLIT_NAMES,
    CsvLayout,
    blocks,
    parse_error,
    read_layout,
    train_batches,
)

PROGRESS_SECONDS = 10.0


@dataclass
class ColumnStats:
    """Numeric columns of the train split, in ``CsvLayout.numeric`` order."""

    count: np.ndarray  # present values per column
    mean: np.ndarray
    m2: np.ndarray  # sum of squared deviations from the mean
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def empty(cls, columns: int) -> ColumnStats:
        zeros = np.zeros(columns)
        return cls(zeros.copy(), zeros.copy(), zeros.copy(), zeros + np.inf, zeros - np.inf)

    def add(self, matrix: np.ndarray) -> None:
        """One block's rows; NaN is a missing value (the caller turns inf into NaN)."""
        present = ~np.isnan(matrix)
        count = present.sum(axis=0).astype(np.float64)
        if not count.any():
            return
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, np.nansum(matrix, axis=0) / count, 0.0)
        m2 = np.nansum(np.square(matrix - mean), axis=0)
        total = self.count + count
        delta = mean - self.mean
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(total > 0, count / total, 0.0)
            self.m2 += m2 + np.where(total > 0, delta**2 * self.count * count / total, 0.0)
        self.mean += delta * share
        self.count = total
        filled_low = np.where(present, matrix, np.inf).min(axis=0)
        filled_high = np.where(present, matrix, -np.inf).max(axis=0)
        self.low = np.minimum(self.low, filled_low)
        self.high = np.maximum(self.high, filled_high)


class BottomK:
    """The ``k`` rows with the smallest keys seen so far: a uniform sample, the same on
    every run since the keys are the rows' hashes.

    Candidates (keys below the k-th smallest at the last merge) wait in a list and are
    merged once they number ``k``: each row costs O(1) amortized, where merging every block
    into the kept rows cost O(k) per block (the scan's largest cost at k = 150,000).
    """

    def __init__(self, k: int) -> None:
        self.k = k
        self.keys = np.empty(0, dtype=np.int64)
        self.columns: dict[str, np.ndarray] = {}
        self.limit: int | None = None  # the k-th smallest key once k rows are kept
        self.pending: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []
        self.pending_rows = 0

    def add(self, keys: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        if self.limit is not None:
            wanted = keys < self.limit
            if not wanted.any():
                return
            keys, columns = keys[wanted], {n: c[wanted] for n, c in columns.items()}
        self.pending.append((keys, columns))
        self.pending_rows += len(keys)
        if self.pending_rows >= self.k:
            self._merge()

    def _merge(self) -> None:
        if not self.pending:
            return
        parts = ([(self.keys, self.columns)] if self.columns else []) + self.pending
        keys = np.concatenate([k for k, _ in parts])
        columns = {n: np.concatenate([c[n] for _, c in parts]) for n in parts[0][1]}
        self.pending, self.pending_rows = [], 0
        if len(keys) > self.k:
            kept = np.argpartition(keys, self.k - 1)[: self.k]
            keys, columns = keys[kept], {n: c[kept] for n, c in columns.items()}
        if len(keys) >= self.k:
            self.limit = int(keys.max())
        self.keys, self.columns = keys, columns

    def rows(self) -> dict[str, np.ndarray]:
        self._merge()
        order = np.argsort(self.keys, kind="stable")
        return {n: c[order] for n, c in self.columns.items()}

    def __len__(self) -> int:
        self._merge()
        return len(self.keys)


@dataclass
class StreamPlan:
    """What the fit needs to read the train split again, and what the scan found."""

    layout: CsvLayout
    seed: int
    fractions: tuple[float, float]
    shuffle_window: int
    drop_missing: bool
    rows: dict[str, int]  # per split, after cleaning
    sampled: dict[str, int]  # rows of each split held in memory
    class_names: list[str] = field(default_factory=list)
    label_keys: list[str] = field(default_factory=list)  # raw label text -> class index
    label_values: list[int] = field(default_factory=list)
    fills: dict[str, Any] = field(default_factory=dict)  # missing: mean
    numeric: dict[str, dict[str, float]] = field(default_factory=dict)  # after imputation
    vocabulary: dict[str, list[str]] = field(default_factory=dict)
    scan_seconds: float = 0.0

    def train_batches(self, batch_size: int, seed: int, **options: Any) -> Any:
        return train_batches(self, batch_size, seed, **options)

    def statistics(self, names: list[str]) -> dict[str, np.ndarray]:
        """Mean, variance, min and max of numeric columns, as the scaler takes them."""
        return {
            key: np.array([self.numeric[n][key] for n in names])
            for key in ("mean", "variance", "min", "max")
        }

    def record(self) -> dict[str, Any]:
        return {
            "files": [p.name for p in self.layout.files],
            "rows": self.rows,
            "held_in_memory": self.sampled,
            "split_by": "SipHash of the row's text keyed with the seed",
            "shuffle_window": self.shuffle_window,
            "scan_seconds": round(self.scan_seconds, 2),
        }


class _Scan:
    def __init__(self, layout: CsvLayout, drop_missing: bool, sample_rows: int) -> None:
        self.layout = layout
        self.drop_missing = drop_missing
        self.rows = [0, 0, 0]
        self.read = 0
        self.missing_labels = 0
        self.missing_rows_dropped = 0
        self.missing = Counter[str]()
        self.numeric = ColumnStats.empty(len(layout.numeric))
        self.categories = {n: Counter[bytes]() for n in layout.inputs if n in layout.categorical}
        self.labels: list[Counter[bytes]] = [Counter(), Counter(), Counter()]
        self.samples = [BottomK(sample_rows) for _ in SPLIT_NAMES]

    def add(self, block: dict[str, np.ndarray]) -> None:
        layout = self.layout
        label = block[LABEL_FIELD]
        present = np.isfinite(label) if layout.regression else label != b""
        self.read += len(label)
        self.missing_labels += int((~present).sum())
        any_missing = np.zeros(len(label), dtype=bool)
        for name in layout.inputs:
            values = block[name]
            # inf counts as missing, as in the in-memory loader.
            gap = (values == b"" if name in layout.categorical else ~np.isfinite(values)) & present
            if gap.any():
                self.missing[name] += int(gap.sum())
                any_missing |= gap
        usable = present
        if self.drop_missing:
            self.missing_rows_dropped += int(any_missing.sum())
            usable = present & ~any_missing
        split = block[SPLIT_FIELD]
        for index in range(3):
            chosen = usable & (split == index)
            self.rows[index] += int(chosen.sum())
            if not chosen.any():
                continue
            if not layout.regression:
                values, counts = np.unique(label[chosen], return_counts=True)
                self.labels[index].update(dict(zip(values.tolist(), counts.tolist(), strict=True)))
            self.samples[index].add(
                block[KEY_FIELD][chosen],
                {n: block[n][chosen] for n in (*layout.inputs, LABEL_FIELD)},
            )
        train = usable & (split == 0)
        if layout.numeric and train.any():
            matrix = np.stack([block[n][train] for n in layout.numeric], axis=1)
            matrix = matrix.astype(np.float64)
            matrix[~np.isfinite(matrix)] = np.nan
            self.numeric.add(matrix)
        for name, counter in self.categories.items():
            values = block[name][train]
            values, counts = np.unique(values[values != b""], return_counts=True)
            counter.update(dict(zip(values.tolist(), counts.tolist(), strict=True)))


def _classes(counts: Counter[bytes], where: str) -> tuple[list[str], dict[str, int]]:
    """Class names and each raw label text's index, by the in-memory loader's rule (numbers
    sort as numbers, whole floats are integers)."""
    raw = [value.decode() for value in counts]
    try:
        values: np.ndarray = np.array([float(v) for v in raw])
    except ValueError:
        values = np.array(raw, dtype=object)
    encoded, names = encode_labels(values, "classification", where)
    return names, {text: int(i) for text, i in zip(raw, encoded, strict=True)}


def _arrays(
    rows: dict[str, np.ndarray], layout: CsvLayout
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A sample as the in-memory loader makes them: float32 with NaN, strings with None."""
    x: dict[str, np.ndarray] = {}
    for name in layout.inputs:
        values = rows.get(name, np.empty(0))
        if name in layout.categorical:
            x[name] = np.array([v.decode() if v else None for v in values], dtype=object)
        else:
            x[name] = values.astype(np.float32)
    return x, rows.get(LABEL_FIELD, np.empty(0))


def _impute(x: dict[str, np.ndarray], fills: dict[str, Any], layout: CsvLayout) -> None:
    for name, fill in fills.items():
        values = x[name]
        if name in layout.categorical:
            gap = np.array([v is None for v in values], dtype=bool)
        else:
            gap = ~np.isfinite(values)
        values[gap] = fill


def scan(config: TrainConfig, say: Any = None) -> Splits:
    """The one pass over the files, and the Splits (samples, plan) the run goes on with."""
    import tensorflow as tf

    started = time.monotonic()
    layout = read_layout(config)
    data, cleaning = config.data, config.cleaning
    fractions = (data.split.train, data.split.val)
    state = _Scan(layout, cleaning.missing == "drop", data.sample_rows)
    shown = started
    for number, path in enumerate(layout.files, start=1):
        before = state.read
        try:
            for block in blocks(layout, config.seed, fractions, files=(path,)).as_numpy_iterator():
                state.add(block)
                if say and time.monotonic() - shown >= PROGRESS_SECONDS:
                    shown = time.monotonic()
                    rate = state.read / (shown - started)
                    say(
                        f"data: scanned {state.read:,} rows ({rate:,.0f} rows/s), file "
                        f"{number} of {len(layout.files)}"
                    )
        except tf.errors.InvalidArgumentError as exc:
            raise DataError(
                f"{path}: {parse_error(exc.message, layout, state.read - before)}"
            ) from None
    return _splits(config, layout, state, time.monotonic() - started)


def _splits(config: TrainConfig, layout: CsvLayout, state: _Scan, seconds: float) -> Splits:
    cleaning = config.cleaning
    where = f"{config.data.path}: label column {layout.label!r}"
    kept = sum(state.rows)
    if not state.read:
        raise DataError(f"{config.data.path}: the files have a header but no rows")
    if state.read == state.missing_labels:
        raise DataError(f"{config.data.path}: every row's label is missing")
    if state.missing and cleaning.missing == "error":
        listed = ", ".join(f"{name} ({count} rows)" for name, count in state.missing.items())
        raise DataError(
            f"missing values in {listed}; set cleaning.missing to drop or mean (the ways of "
            "filling that stream)"
        )
    for index, name in enumerate(SPLIT_NAMES):
        if state.rows[index] < 2:
            raise DataError(
                f"too few rows for the split: {state.rows[index]} of {kept} rows hash into "
                f"{name} (fractions {config.data.split.train}, {config.data.split.val}, "
                f"{config.data.split.test})"
            )
    plan = StreamPlan(
        layout,
        config.seed,
        (config.data.split.train, config.data.split.val),
        config.data.shuffle_window,
        state.drop_missing,
        dict(zip(SPLIT_NAMES, state.rows, strict=True)),
        {name: len(s) for name, s in zip(SPLIT_NAMES, state.samples, strict=True)},
        scan_seconds=seconds,
    )
    # Rows of each class in the train split: the absent-class check, class weights, report.
    train_counts = np.zeros(0, dtype=np.int64)
    encoding: dict[str, int] = {}  # raw label text -> class index
    if not layout.regression:
        total: Counter[bytes] = Counter()
        for counts in state.labels:
            total.update(counts)
        plan.class_names, encoding = _classes(total, where)
        plan.label_keys, plan.label_values = list(encoding), list(encoding.values())
        train_counts = np.zeros(len(plan.class_names), dtype=np.int64)
        for text, count in state.labels[0].items():
            train_counts[encoding[text.decode()]] += count
        absent = [plan.class_names[i] for i in np.flatnonzero(train_counts == 0)]
        if absent:
            raise DataError(f"{where}: class {absent[0]!r} has no rows in the train split")
    stats = state.numeric
    train_rows = state.rows[0]
    for position, name in enumerate(layout.numeric):
        if not stats.count[position]:
            raise DataError(f"{config.data.path}: column {name!r} has no values in the train split")
        if cleaning.missing == "mean" and state.missing[name]:
            plan.fills[name] = float(stats.mean[position])
        # Mean-filled values add no squared deviation, only rows: the variance of the
        # imputed column, as the in-memory path adapts it.
        plan.numeric[name] = {
            "mean": float(stats.mean[position]),
            "variance": float(stats.m2[position] / train_rows),
            "min": float(stats.low[position]),
            "max": float(stats.high[position]),
        }
    for name, counter in state.categories.items():
        if not counter:
            raise DataError(f"{config.data.path}: column {name!r} has no values in the train split")
        values = sorted(counter)
        if cleaning.missing == "mean" and state.missing[name]:
            # The most frequent value, the first in sorted order on a tie (as np.unique):
            # max keeps the first of equal keys.
            plan.fills[name] = max(values, key=counter.__getitem__).decode()
        plan.vocabulary[name] = [v.decode() for v in values]

    samples = []
    for sample in state.samples:
        x, raw = _arrays(sample.rows(), layout)
        if layout.regression:
            y = raw.astype(np.float32)
        else:
            y = np.array([encoding[t.decode()] for t in raw], dtype=np.int64)
        samples.append((x, y))
    raw_train = {n: v.copy() for n, v in samples[0][0].items()}
    for x, _ in samples:
        _impute(x, plan.fills, layout)
    report = _cleaning_report(config, state, plan, train_counts)
    dataset = Dataset(
        raw_train,
        samples[0][1],
        "columns",
        plan.class_names,
        f"{layout.describe()}: {state.read:,} rows",
        feature_names=list(layout.inputs),
        categorical=sorted(layout.categorical),
        missing_labels=state.missing_labels,
    )
    splits = Splits(
        samples[0][0],
        samples[0][1],
        samples[1][0],
        samples[1][1],
        samples[2][0],
        samples[2][1],
        dataset,
        cleaning=report,
        # The baseline profile reads the raw (unimputed) train sample, held as the dataset.
        rows={"train": np.arange(len(samples[0][1]))},
        stream=plan,
    )
    if config.task == "classification" and config.data.balance == "class_weight":
        present = np.flatnonzero(train_counts)
        counted = train_counts[present].astype(np.float64)
        # scikit-learn's "balanced" weights, as the in-memory path computes them from labels.
        weights = counted.sum() / (len(present) * counted)
        splits.class_weight = {int(c): float(w) for c, w in zip(present, weights, strict=True)}
        report["balance"]["class_weight"] = {
            plan.class_names[c]: w for c, w in splits.class_weight.items()
        }
    return splits


def _cleaning_report(
    config: TrainConfig, state: _Scan, plan: StreamPlan, train_counts: np.ndarray
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "rows_loaded": state.read,
        "missing_label_dropped": state.missing_labels,
        "duplicates_dropped": 0,
        "missing_values": dict(state.missing),
        "missing_rows_dropped": state.missing_rows_dropped,
        "rows_kept": sum(state.rows),
        "imputed": dict(state.missing) if plan.fills else {},
        "outliers": "none",
        "clipped_in_train": {},
    }
    if config.task == "classification":
        report["balance"] = {
            "mode": config.data.balance,
            "train_counts_before": train_counts.tolist(),
        }
    return report
