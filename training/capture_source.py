"""``data: {source: capture}``: requests a server captured, labelled, as a training set.

The server writes sampled requests as JSON lines (service/capture/writer.py); someone then
labels some of them in a CSV keyed by ``request_id`` (and ``row``, the row's index within
its request, for requests of several rows). This reads the folder's records of one model,
keeps the rows the CSV labels, and stacks each input as the model receives it. Captured
requests without a label are left out and counted; a label naming a request the folder does
not hold is an error, since a typo there would silently shrink the data.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from training.config import TrainConfig
from training.errors import DataError
from training.loaders import Dataset, array_dataset, encode_labels

Key = tuple[str, int | None]


def _labels(path: Path, column: str) -> dict[Key, str]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            for needed in ("request_id", column):
                if needed not in header:
                    raise DataError(
                        f"{path}: no column {needed!r} (columns: {', '.join(header) or 'none'}; "
                        "a labels CSV has request_id, the label column and optionally row)"
                    )
            by_row = "row" in header
            found: dict[Key, str] = {}
            for line, record in enumerate(reader, start=2):
                row = None
                if by_row:
                    text = (record.get("row") or "").strip()
                    if not text.isdigit():
                        raise DataError(f"{path}:{line}: row must be a whole number, got {text!r}")
                    row = int(text)
                label = (record.get(column) or "").strip()
                if label:  # a request nobody labelled yet
                    found[(record["request_id"].strip(), row)] = label
    except FileNotFoundError:
        raise DataError(f"{path}: no such file (data.labels)") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not found:
        raise DataError(f"{path}: no labelled rows in column {column!r}")
    return found


def _records(folder: Path, model: str) -> list[dict[str, Any]]:
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder (data.path: the server's TFSHIP_CAPTURE_DIR)")
    files = sorted(folder.glob("*.jsonl"))
    if not files:
        raise DataError(f"{folder}: no capture files (*.jsonl)")
    records = []
    for path in files:
        with path.open("rb") as f:
            for number, line in enumerate(f, start=1):
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    # The last line of a file a worker was writing when it was copied.
                    raise DataError(f"{path}:{number}: not a JSON line") from None
                if record.get("model") == model:
                    records.append(record)
    if not records:
        raise DataError(f"{folder}: no captured requests of model {model!r}")
    return records


def _value(value: Any) -> Any:
    if isinstance(value, dict) and "b64" in value:
        import base64

        return base64.b64decode(value["b64"])
    return value


def load_capture(config: TrainConfig) -> Dataset:
    model = config.data.model or config.name
    folder = config.data_path()
    records = _records(folder, model)
    labels = _labels(config.data_path(config.data.labels), config.data.label)
    by_row = any(row is not None for _, row in labels)
    inputs: dict[str, list[Any]] = {}
    y: list[str] = []
    matched: set[str] = set()
    unlabelled = 0
    for record in records:
        request_id = str(record.get("request_id"))
        values = record.get("inputs") or {}
        rows = len(next(iter(values.values()), []))
        if not by_row and (request_id, None) in labels and rows != 1:
            raise DataError(
                f"{config.data.labels}: request {request_id} has {rows} rows; label its rows "
                "with a row column (0, 1, ...)"
            )
        for row in range(rows):
            label = labels.get((request_id, row if by_row else None))
            if label is None:
                unlabelled += 1
                continue
            matched.add(request_id)
            y.append(label)
            for name, column in values.items():
                inputs.setdefault(name, []).append(column[row])
    missing = sorted({rid for rid, _ in labels} - {str(r.get("request_id")) for r in records})
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DataError(
            f"{config.data.labels}: {len(missing)} labelled request(s) not in the capture of "
            f"model {model!r}: {shown}"
        )
    description = (
        f"captured requests of {model} in {folder.name} ({len(y)} labelled rows of "
        f"{len(matched)} requests; {unlabelled} unlabelled rows left out)"
    )
    arrays = {name: _stack(name, column) for name, column in inputs.items()}
    labels_array = _label_array(y)
    if len(arrays) == 1 and all(a.dtype != object for a in arrays.values()):
        ((name, x),) = arrays.items()
        dataset = array_dataset(x, labels_array, config, description)
        if not config.data.input_name:  # the name the model was served under
            dataset.x = {name: dataset.x.popitem()[1]}
        dataset.missing_labels = unlabelled
        return dataset
    encoded, class_names = encode_labels(labels_array, config.task, str(config.data.labels))
    columns = {name: a.reshape(len(a)) if a.ndim > 1 else a for name, a in arrays.items()}
    if any(a.ndim != 1 for a in columns.values()):
        raise DataError(f"{folder}: several inputs must each be one value per row")
    return Dataset(
        columns,
        encoded,
        "columns",
        class_names,
        description,
        feature_names=list(columns),
        categorical=[n for n, a in columns.items() if a.dtype == object],
        missing_labels=unlabelled,
    )


def _label_array(labels: list[str]) -> np.ndarray:
    """Whole numbers as numbers, so classes sort 2 before 10 as the CSV source's do."""
    try:
        return np.asarray([int(v) for v in labels], dtype=np.int64)
    except ValueError:
        return np.asarray(labels, dtype=object)


def _stack(name: str, column: list[Any]) -> np.ndarray:
    if column and isinstance(_value(column[0]), str | bytes):
        return np.array([_value(v) for v in column], dtype=object)
    try:
        return np.asarray([np.nan if v is None else v for v in column], dtype=np.float32)
    except (TypeError, ValueError):
        raise DataError(f"captured input {name!r}: rows of different shapes or kinds") from None
