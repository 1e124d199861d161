"""Rows for an import's parity check, warm-up requests and int8 calibration (the
``--calibration`` file checked against the model's signature, or rows generated from it),
and its ``--profile-data`` rows for the baseline profile."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfship.version_metadata import TensorInfo
from training.errors import ImportRefused
from training.import_request import ImportRequest

# Rows generated for the parity check and warm-up when no --calibration file is given.
GENERATED_ROWS = 256


def count_rows(rows: dict[str, np.ndarray]) -> int:
    return len(next(iter(rows.values())))


def sample_rows(request: ImportRequest, inputs: list[TensorInfo]) -> dict[str, np.ndarray]:
    """The --calibration rows (checked against the signature), or generated ones."""
    if request.calibration is None:
        return generated_rows(inputs, request.seed)
    return read_rows(request.calibration, "--calibration", inputs)


def read_rows(path: Path, flag: str, inputs: list[TensorInfo]) -> dict[str, np.ndarray]:
    """An .npz of rows, one array per model input, checked against the signature."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as exc:
        raise ImportRefused(f"{flag} {path}: not a readable .npz: {exc}") from None
    rows = {}
    for spec in inputs:
        if spec.name not in arrays:
            raise ImportRefused(
                f"{flag} {path} has no array '{spec.name}' (it has: "
                f"{', '.join(sorted(arrays)) or 'none'}); one per model input"
            )
        values = arrays[spec.name]
        fits = values.ndim == len(spec.shape) and all(
            want in (-1, got) for want, got in zip(spec.shape[1:], values.shape[1:], strict=True)
        )
        if not fits:
            raise ImportRefused(
                f"{flag}: '{spec.name}' has shape {list(values.shape)}, the model "
                f"takes {list(spec.shape)}"
            )
        rows[spec.name] = values.astype(spec.dtype if spec.dtype != "object" else str)
    if len({len(v) for v in rows.values()}) != 1 or not count_rows(rows):
        raise ImportRefused(f"{flag} {path}: every input needs the same rows")
    return rows


def generated_rows(inputs: list[TensorInfo], seed: int) -> dict[str, np.ndarray]:
    """Uniform [0, 1) floats, small integers, alternating booleans; unknown inner dims 1."""
    random = np.random.default_rng(seed)
    rows = {}
    for spec in inputs:
        shape = (GENERATED_ROWS, *(1 if d == -1 else d for d in spec.shape[1:]))
        if spec.dtype in ("object", "string"):
            raise ImportRefused(
                f"input '{spec.name}' takes strings: give rows with --calibration FILE.npz "
                "(tfship cannot make up strings the model knows)"
            )
        dtype = np.dtype(spec.dtype)
        if dtype.kind == "f":
            rows[spec.name] = random.random(shape).astype(dtype)
        elif dtype.kind == "b":
            rows[spec.name] = random.random(shape) < 0.5
        else:
            rows[spec.name] = random.integers(0, 10, shape).astype(dtype)
    return rows
