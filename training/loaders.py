"""Loaders: the configured source -> a Dataset of named input arrays and encoded labels.

Every loader refuses bad data with a DataError that names the file, column or key, so a
run stops before training on something it would silently misread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from training.config import TrainConfig
from training.errors import DataError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
# TensorFlow's rule for signature input names; CSV headers are mapped onto it.
_TENSOR_NAME = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\-/]*$")

Kind = Literal["image", "sequence", "tabular", "columns"]


@dataclass
class Dataset:
    """Features as named arrays (one per model input), labels encoded for the task.

    ``kind`` says what the arrays are: one image batch, one sequence batch, one tabular
    matrix, or (CSV) one array per column, numeric or categorical.
    """

    x: dict[str, np.ndarray]
    y: np.ndarray
    kind: Kind
    class_names: list[str]
    description: str
    feature_names: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    # Rows dropped while loading because their label was missing.
    missing_labels: int = 0

    def __len__(self) -> int:
        return len(self.y)


def encode_labels(raw: np.ndarray, task: str, where: str) -> tuple[np.ndarray, list[str]]:
    if task == "regression":
        try:
            return np.asarray(raw, dtype=np.float32), []
        except (TypeError, ValueError):
            raise DataError(f"{where}: regression labels must be numbers") from None
    values = np.asarray(raw)
    if values.dtype.kind == "f" and np.all(values == np.round(values)):
        values = values.astype(np.int64)
    classes, encoded = np.unique(
        values.astype(str) if values.dtype.kind == "O" else values, return_inverse=True
    )
    if len(classes) < 2:
        raise DataError(
            f"{where}: the labels hold a single class ({str(classes[0])!r}); nothing to learn"
        )
    return encoded.astype(np.int64), [str(c) for c in classes]


def _default_input(kind: Kind, config: TrainConfig) -> str:
    if config.data.input_name:
        return config.data.input_name
    return {"image": "pixels", "sequence": "sequence"}.get(kind, "features")


def array_dataset(
    x: np.ndarray,
    y_raw: np.ndarray,
    config: TrainConfig,
    description: str,
    feature_names: list[str] | None = None,
) -> Dataset:
    if x.ndim == 2:
        kind: Kind = "tabular"
    elif x.ndim == 3:
        kind = "sequence"
    elif x.ndim == 4:
        kind = "image"
    else:
        raise DataError(
            f"features have shape {x.shape}; expected rows (2-D), sequences (3-D: rows, "
            "steps, channels) or images (4-D: rows, height, width, channels)"
        )
    y, class_names = encode_labels(y_raw, config.task, "labels")
    names = feature_names or ([f"f{i}" for i in range(x.shape[1])] if kind == "tabular" else [])
    name = _default_input(kind, config)
    return Dataset({name: x.astype(np.float32)}, y, kind, class_names, description, names)


def load_sklearn(config: TrainConfig) -> Dataset:
    from sklearn import datasets

    name = config.data.dataset
    bunch = getattr(datasets, f"load_{name}")()
    if name == "digits":
        # Raw pixel intensities 0..16 with a channel axis, exactly what clients will send.
        x = bunch.images[..., np.newaxis]
        description = "scikit-learn bundled digits (8x8 grey, 0-16)"
    else:
        x = bunch.data
        description = f"scikit-learn bundled {name} ({x.shape[1]} numeric features)"
    dataset = array_dataset(
        np.asarray(x),
        bunch.target,
        config,
        description,
        [str(n) for n in getattr(bunch, "feature_names", [])] or None,
    )
    target_names = getattr(bunch, "target_names", None)
    if config.task == "classification" and target_names is not None and name != "digits":
        dataset.class_names = [str(n) for n in target_names]
    return dataset


def sine_waves(seed: int, rows: int = 600, steps: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Noisy sine waves of three frequencies: a small sequence task made by code.

    The class is the frequency; phase, amplitude and noise vary, so the model has to look
    at the shape over time rather than at any single step.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=rows)
    frequency = np.array([1.0, 2.0, 3.5])[labels]
    t = np.linspace(0, 2 * np.pi, steps)
    phase = rng.uniform(0, 2 * np.pi, size=(rows, 1))
    amplitude = rng.uniform(0.5, 1.5, size=(rows, 1))
    waves = amplitude * np.sin(frequency[:, None] * t[None, :] + phase)
    waves += rng.normal(0, 0.2, size=waves.shape)
    return waves[..., np.newaxis].astype(np.float32), labels


def load_synthetic(config: TrainConfig) -> Dataset:
    x, y = sine_waves(config.seed)
    dataset = array_dataset(x, y, config, "generated sine waves (40 steps, 3 frequencies)")
    dataset.class_names = ["slow", "medium", "fast"]
    return dataset


def load_npz(config: TrainConfig) -> Dataset:
    path = config.data_path()
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if magic != b"PK\x03\x04":
        raise DataError(
            f"{path}: not a readable NPZ file (save one with numpy.savez(x=..., y=...))"
        )
    try:
        # No pickle: an NPZ with object arrays is refused rather than executed.
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in ("x", "y") if k not in archive.files]
            if missing:
                raise DataError(
                    f"{path}: missing array {missing[0]!r} (found: "
                    f"{', '.join(archive.files) or 'none'}; "
                    "an NPZ for tfship holds features 'x' and labels 'y')"
                )
            x, y = archive["x"], archive["y"]
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DataError(
                f"{path}: holds object arrays, which need pickle; tfship loads numeric arrays only"
            ) from None
        raise DataError(f"{path}: cannot read: {exc}") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable NPZ file ({exc})") from None
    if len(x) == 0:
        raise DataError(f"{path}: 'x' has no rows")
    if len(x) != len(y):
        raise DataError(f"{path}: 'x' has {len(x)} rows but 'y' has {len(y)}")
    if x.dtype.kind not in "iuf":
        raise DataError(f"{path}: 'x' must be numeric, got dtype {x.dtype}")
    return array_dataset(x, y, config, f"NPZ file {path.name} ({len(x)} rows)")


def load_images(config: TrainConfig) -> Dataset:
    from PIL import Image, UnidentifiedImageError

    root = config.data_path()
    if not root.is_dir():
        raise DataError(f"{root}: no such folder (an image dataset is one sub-folder per class)")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root}: no class sub-folders (expected one sub-folder per class)")
    height, width = config.data.image_size
    mode = "L" if config.data.color_mode == "grayscale" else "RGB"
    images, labels = [], []
    for index, name in enumerate(classes):
        files = sorted(
            p for p in (root / name).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        for file in files:
            try:
                with Image.open(file) as image:
                    pixels = image.convert(mode).resize((width, height), Image.Resampling.BILINEAR)
                    images.append(np.asarray(pixels, dtype=np.float32))
            except (UnidentifiedImageError, OSError, ValueError) as exc:
                raise DataError(f"{file}: image does not decode ({exc})") from None
            labels.append(index)
    if not images:
        raise DataError(f"{root}: no PNG or JPEG files in the class folders")
    x = np.stack(images)
    if x.ndim == 3:
        x = x[..., np.newaxis]
    dataset = array_dataset(
        x,
        np.asarray(labels),
        config,
        f"image folder {root.name} ({len(classes)} classes, "
        f"{height}x{width} {config.data.color_mode})",
    )
    dataset.class_names = classes
    return dataset


def input_name_for_column(column: str) -> str:
    """A CSV header as a model input name: characters TF does not allow become '_'."""
    name = re.sub(r"[^A-Za-z0-9_.\-/]", "_", column.strip())
    if not name or not _TENSOR_NAME.match(name):
        name = f"c_{name}"
    return name


def csv_features(columns: list[str], config: TrainConfig, where: str) -> list[str]:
    """The feature columns of a CSV with these ``columns`` (its header), checked against
    data.label, data.features and data.categorical; errors start with ``where``."""
    data = config.data
    if data.label not in columns:
        raise DataError(
            f"{where}: label column {data.label!r} not found (data.label; "
            f"columns: {', '.join(columns)})"
        )
    features = (
        data.features if data.features is not None else [c for c in columns if c != data.label]
    )
    unknown = [c for c in [*features, *data.categorical] if c not in columns]
    if unknown:
        raise DataError(f"{where}: column {unknown[0]!r} not found (columns: {', '.join(columns)})")
    stray = [c for c in data.categorical if c not in features]
    if stray:
        raise DataError(f"data.categorical: {stray[0]!r} is not one of the feature columns")
    if not features:
        raise DataError(f"{where}: no feature columns besides the label")
    return list(features)


def load_csv(config: TrainConfig) -> Dataset:
    import pandas as pd

    path = config.data_path()
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from None
    if frame.empty:
        raise DataError(f"{path}: the file has a header but no rows")
    data = config.data
    features = csv_features([str(c) for c in frame.columns], config, str(path))
    for column in features:
        if column in data.categorical:
            continue
        if not pd.api.types.is_numeric_dtype(frame[column]):
            converted = pd.to_numeric(frame[column], errors="coerce")
            bad = frame[column][converted.isna() & frame[column].notna()]
            example = bad.iloc[0] if len(bad) else "?"
            raise DataError(
                f"{path}: feature column {column!r} is not numeric (row {int(bad.index[0]) + 2}: "
                f"{example!r}); list it under data.categorical to encode it"
            )
    names = {input_name_for_column(c): c for c in features}
    if len(names) != len(features):
        raise DataError(f"{path}: two feature columns map to the same input name")
    missing_label = frame[data.label].isna()
    frame = frame[~missing_label]
    if frame.empty:
        raise DataError(f"{path}: every row's label is missing")
    y, class_names = encode_labels(
        frame[data.label].to_numpy(), config.task, f"{path}: label column {data.label!r}"
    )
    x: dict[str, np.ndarray] = {}
    for name, column in names.items():
        values = frame[column]
        if column in data.categorical:
            # Strings as the client will send them; missing stays None for the cleaning stage.
            x[name] = np.array([None if pd.isna(v) else str(v) for v in values], dtype=object)
        else:
            x[name] = values.to_numpy(dtype=np.float32, na_value=np.nan)
    return Dataset(
        x,
        y,
        "columns",
        class_names,
        f"CSV file {path.name} ({len(features)} features, {len(data.categorical)} categorical)",
        feature_names=list(names),
        categorical=[input_name_for_column(c) for c in data.categorical],
        missing_labels=int(missing_label.sum()),
    )


def load_dataset(config: TrainConfig) -> Dataset:
    from training.capture_source import load_capture  # it builds on this module

    loader = {
        "capture": load_capture,
        "sklearn": load_sklearn,
        "synthetic": load_synthetic,
        "npz": load_npz,
        "images": load_images,
        "csv": load_csv,
    }[config.data.source]
    dataset = loader(config)
    architecture = config.model.architecture
    allowed = {
        "image": ("cnn", "mlp"),
        "sequence": ("rnn", "mlp"),
        "tabular": ("mlp",),
        "columns": ("mlp",),
    }[dataset.kind]
    if architecture not in allowed:
        raise DataError(
            f"model.architecture: {architecture!r} does not fit {dataset.kind} data "
            f"(use {' or '.join(allowed)})"
        )
    if dataset.kind != "image" and config.preprocessing.augmentation.any():
        raise DataError("preprocessing.augmentation: image augmentation needs image data")
    return dataset
