"""Floats in JSON answers at the precision of their own dtype.

orjson writes float32 and float64 at their shortest round-trip digits, but float16 through
float32: float16's 0.1 comes out as 0.099975586, a precision the number does not have. A
float16 value is rewritten as the float64 of its own shortest decimal (numpy's, which
round-trips float16), and orjson prints that float64 as exactly those digits. Other values
pass untouched, so float32 answers keep orjson's array path with no Python loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _decimal(value: np.float16) -> float:
    return float(np.format_float_positional(value, unique=True))


def json_floats(array: np.ndarray) -> np.ndarray:
    """``array`` itself, or a float16 array as float64s of its shortest decimals."""
    if array.dtype != np.float16:
        return array
    flat = [_decimal(v) for v in array.reshape(-1)]
    return np.array(flat, dtype=np.float64).reshape(array.shape)


def json_float(value: Any) -> Any:
    """One score or prediction, as ``json_floats`` writes each element."""
    return _decimal(value) if isinstance(value, np.float16) else value
