"""Streaming CSV (``data.streaming``): rows read from disk with tf.data, never all at once.

Each row's split comes from a keyed hash of its text (SipHash, keyed with the run's seed):
the same row lands in the same split on every run and machine, identical rows share a split
(so a repeated row never leaks from train into test), and no split needs the others' rows.
The hash also gives each row a sample key, from which the scan keeps a uniform sample of
every split (``stream_scan.py``).

Lines are parsed in blocks (one ``decode_csv`` per block) and training batches are cut
from windows of ``data.shuffle_window`` rows shuffled as a whole: tf.data's per-row
``unbatch``/``shuffle`` costs ~10x the parse on tabular rows.
"""

from __future__ import annotations

import csv
import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from training.config import TrainConfig
from training.errors import DataError
from training.loaders import csv_features, input_name_for_column

BLOCK_ROWS = 8192
# A row's split is its hash modulo this, compared with the configured fractions.
SPLIT_BUCKETS = 1_000_000
SPLIT_NAMES = ("train", "val", "test")
SPLIT_FIELD = "__split"
KEY_FIELD = "__key"
LABEL_FIELD = "__label"


@dataclass(frozen=True)
class CsvLayout:
    """The files and what each parsed column becomes."""

    files: tuple[Path, ...]
    header: tuple[str, ...]
    label: str
    features: tuple[str, ...]  # header names, in data.features order (default: file order)
    inputs: tuple[str, ...]  # the model input name of each feature
    categorical: frozenset[str]  # input names
    regression: bool

    @property
    def selected(self) -> list[int]:
        """Header positions of the features and the label, ascending: the columns decode_csv
        reads (its ``select_cols``), in the order it returns them."""
        return sorted(self.header.index(c) for c in (*self.features, self.label))

    @property
    def numeric(self) -> list[str]:
        return [name for name in self.inputs if name not in self.categorical]

    def describe(self) -> str:
        shown = self.files[0].name if len(self.files) == 1 else f"{len(self.files)} files"
        return (
            f"CSV {shown}, streamed ({len(self.features)} features, "
            f"{len(self.categorical)} categorical)"
        )


def resolve_files(config: TrainConfig) -> tuple[Path, ...]:
    """``data.path`` as a file or a glob (relative to the config file), sorted."""
    path = config.data_path()
    if glob.has_magic(str(path)):
        files = tuple(Path(p) for p in sorted(glob.glob(str(path))) if Path(p).is_file())
        if not files:
            raise DataError(f"{path}: no file matches")
        return files
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    return (path,)


def _header(path: Path) -> tuple[str, ...]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            row = next(csv.reader(f), None)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not row:
        raise DataError(f"{path}: the file is empty")
    return tuple(c.strip() for c in row)


def read_layout(config: TrainConfig) -> CsvLayout:
    """Every file's header checked against the config, and against the first file's."""
    files = resolve_files(config)
    header = _header(files[0])
    for other in files[1:]:
        if _header(other) != header:
            raise DataError(
                f"{other}: its header differs from {files[0].name}'s (every file of a glob "
                f"needs the same columns in the same order: {', '.join(header)})"
            )
    data = config.data
    where = str(files[0]) if len(files) == 1 else f"{config.data_path()} ({files[0].name})"
    features = csv_features(list(header), config, where)
    ordered = tuple(features)  # the config's order, as the in-memory loader keeps it
    inputs = tuple(input_name_for_column(c) for c in ordered)
    if len(set(inputs)) != len(inputs):
        raise DataError(f"{where}: two feature columns map to the same input name")
    return CsvLayout(
        files,
        header,
        data.label,
        ordered,
        inputs,
        frozenset(input_name_for_column(c) for c in data.categorical),
        config.task == "regression",
    )


def _parser(layout: CsvLayout, seed: int, fractions: tuple[float, float]) -> Any:
    """Lines -> a block dict: every input, the raw label, the split and the sample key."""
    wanted = [layout.header.index(c) for c in (*layout.features, layout.label)]
    order = layout.selected
    names = dict(zip(wanted, [*layout.inputs, LABEL_FIELD], strict=True))
    defaults: list[Any] = []
    for index in order:
        name = names[index]
        is_text = name in layout.categorical or (name == LABEL_FIELD and not layout.regression)
        # An empty field is a missing value: "" for text, NaN for numbers.
        defaults.append(tf.constant([""]) if is_text else tf.constant([np.nan], tf.float32))
    train_cut = round(fractions[0] * SPLIT_BUCKETS)
    val_cut = round((fractions[0] + fractions[1]) * SPLIT_BUCKETS)

    def parse(lines: tf.Tensor) -> dict[str, tf.Tensor]:
        lines = tf.strings.strip(lines)  # "\r" of Windows line ends, blank lines
        lines = tf.boolean_mask(lines, tf.strings.length(lines) > 0)
        hashed = tf.strings.to_hash_bucket_strong(lines, 2**63 - 1, key=[seed, 0x7F5])
        bucket = hashed % SPLIT_BUCKETS
        split = tf.where(bucket < train_cut, 0, tf.where(bucket < val_cut, 1, 2))
        columns = tf.io.decode_csv(
            lines, defaults, select_cols=order, na_value="", use_quote_delim=True
        )
        block = {names[i]: column for i, column in zip(order, columns, strict=True)}
        block[SPLIT_FIELD] = tf.cast(split, tf.int8)
        block[KEY_FIELD] = hashed // SPLIT_BUCKETS
        return block

    return parse


def blocks(
    layout: CsvLayout,
    seed: int,
    fractions: tuple[float, float],
    files: tuple[Path, ...] | None = None,
    file_order_seed: int | None = None,
) -> tf.data.Dataset:
    """Parsed blocks of up to BLOCK_ROWS rows of ``files`` (default: all), in file order,
    or in an order reshuffled every pass when ``file_order_seed`` is given."""
    chosen = files or layout.files
    paths = tf.data.Dataset.from_tensor_slices([str(p) for p in chosen])
    if file_order_seed is not None and len(chosen) > 1:
        paths = paths.shuffle(len(chosen), seed=file_order_seed)
    lines = paths.flat_map(lambda path: tf.data.TextLineDataset(path).skip(1))
    return lines.batch(BLOCK_ROWS).map(
        _parser(layout, seed, fractions), num_parallel_calls=tf.data.AUTOTUNE
    )


def parse_error(message: str, layout: CsvLayout, rows_before: int) -> str:
    """decode_csv's complaint as a DataError's text: the data row (1-based, blank lines not
    counted) and the column by name. ``rows_before``: rows of the file before the block."""
    import re

    selected = layout.selected
    field = re.search(r"Field (\d+) in record (\d+) is not a valid \w+: ?(.*)", message)
    if field and int(field[1]) < len(selected):
        column = layout.header[selected[int(field[1])]]
        row = rows_before + int(field[2]) + 1
        value = field[3].splitlines()[0].strip()
        hint = "" if column == layout.label else "; list it under data.categorical to encode it"
        return f"row {row:,}: column {column!r} has a value that is not a number ({value!r}){hint}"
    count = re.search(r"Expect (\d+) fields but have (\d+) in record (\d+)", message)
    if count:
        row = rows_before + int(count[3]) + 1
        return (
            f"row {row:,}: {count[2]} fields where the header has {len(layout.header)} "
            f"({', '.join(layout.header)})"
        )
    return f"not a readable CSV file ({message.strip().splitlines()[-1]})"


def train_batches(
    plan: Any,
    batch_size: int,
    seed: int,
    *,
    class_weight: dict[int, float] | None = None,
    repeat: bool = False,
    drop_remainder: bool = False,
    files: tuple[Path, ...] | None = None,
) -> tf.data.Dataset:
    """The train split as (x, y[, weight]) batches, read from disk on every pass.

    ``plan`` is the scan's ``StreamPlan``: which rows it kept (a missing label never,
    a missing feature not under ``cleaning.missing: drop``), the values that fill missing
    ones (``mean``), and the label's encoding. ``repeat`` streams epoch after epoch without
    a break, for a loop that counts its own steps (multi-worker); ``files`` is a worker's
    share of the files (default: all of them).
    """
    layout: CsvLayout = plan.layout
    if layout.regression:
        table = None
    else:
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(plan.label_keys), tf.constant(plan.label_values, tf.int64)
            ),
            default_value=-1,
        )
    weights = None
    if class_weight:
        weights = tf.constant(
            [class_weight.get(i, 1.0) for i in range(len(plan.class_names))], tf.float32
        )

    def missing(name: str, values: tf.Tensor) -> tf.Tensor:
        if name in layout.categorical:
            return tf.equal(values, "")
        return tf.logical_not(tf.math.is_finite(values))  # NaN (an empty field) or inf

    def select(block: dict[str, tf.Tensor]) -> tuple[Any, ...]:
        label = block[LABEL_FIELD]
        keep = tf.equal(block[SPLIT_FIELD], 0)
        keep &= tf.math.is_finite(label) if table is None else tf.not_equal(label, "")
        if plan.drop_missing:
            for name in layout.inputs:
                keep &= tf.logical_not(missing(name, block[name]))
        x = {}
        for name in layout.inputs:
            values = tf.boolean_mask(block[name], keep)
            if name in plan.fills:
                values = tf.where(missing(name, values), plan.fills[name], values)
            x[name] = values
        kept = tf.boolean_mask(label, keep)
        y = kept if table is None else table.lookup(kept)
        if weights is None:
            return x, y
        return x, y, tf.gather(weights, y)

    def mix(*parts: Any) -> tuple[Any, ...]:
        order = tf.random.shuffle(tf.range(tf.shape(parts[1])[0]), seed=seed)
        return tuple(tf.nest.map_structure(lambda t: tf.gather(t, order), p) for p in parts)

    def single(*parts: Any) -> tuple[Any, ...]:
        # A one-input model takes the tensor itself, as with in-memory arrays.
        return (next(iter(parts[0].values())), *parts[1:])

    data = blocks(layout, plan.seed, plan.fractions, files=files, file_order_seed=seed)
    data = data.map(select, num_parallel_calls=tf.data.AUTOTUNE)
    if repeat:
        data = data.repeat()
    data = data.rebatch(plan.shuffle_window).map(mix, num_parallel_calls=tf.data.AUTOTUNE)
    data = data.rebatch(batch_size, drop_remainder=drop_remainder)
    if not repeat:
        # The scan counted the rows: Keras then knows the epoch's length (no "ran out of
        # data" at the end of the first), and files changed since the scan stop the run.
        rows = plan.rows["train"]
        batches = rows // batch_size if drop_remainder else -(-rows // batch_size)
        data = data.apply(tf.data.experimental.assert_cardinality(batches))
    if len(layout.inputs) == 1:
        data = data.map(single)
    return data.prefetch(tf.data.AUTOTUNE)
