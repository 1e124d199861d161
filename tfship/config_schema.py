"""Strict YAML/JSON -> frozen dataclasses, shared by the training and model config files.

An unknown key or a value of the wrong type is refused with a message naming the key
(``fit.epochs: expected an integer, got str 'ten'``). Standard library only.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from typing import Any, Literal

# PyYAML follows YAML 1.1, where 1e-3 (no dot) is a string; people mean a number.
_EXPONENT_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


class SchemaError(ValueError):
    """A value does not fit the schema; the message starts with the key's dotted path."""


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _coerce(value: Any, hint: Any, key: str) -> Any:
    if hint is Any:  # checked by whoever reads it (e.g. a tuning choice, checked per trial)
        return value
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, key)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]
        return _coerce(value, inner, key)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            options = ", ".join(repr(c) for c in choices)
            raise SchemaError(f"{key}: expected one of {options}, got {value!r}")
        return value
    if origin is list:
        (item_hint,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise SchemaError(f"{key}: expected a list, got {_describe(value)}")
        return [_coerce(item, item_hint, f"{key}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        key_hint, value_hint = typing.get_args(hint)
        if not isinstance(value, dict):
            raise SchemaError(f"{key}: expected a mapping, got {_describe(value)}")
        return {
            _coerce(k, key_hint, f"{key}.{k}"): _coerce(v, value_hint, f"{key}.{k}")
            for k, v in value.items()
        }
    if hint is bool:
        if not isinstance(value, bool):
            raise SchemaError(f"{key}: expected true or false, got {_describe(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SchemaError(f"{key}: expected an integer, got {_describe(value)}")
        return value
    if hint is float:
        if isinstance(value, str) and _EXPONENT_FLOAT.match(value):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SchemaError(f"{key}: expected a number, got {_describe(value)}")
        if not math.isfinite(value):
            raise SchemaError(f"{key}: expected a finite number, got {value}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise SchemaError(f"{key}: expected a string, got {_describe(value)}")
        return value
    raise SchemaError(f"{key}: unsupported type in config schema")


def build(cls: type, raw: Any, prefix: str = "") -> Any:
    """An instance of dataclass ``cls`` from a parsed YAML/JSON mapping."""
    where = prefix or "top level"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SchemaError(f"{where}: expected a mapping, got {_describe(raw)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields), key=str)
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else str(unknown[0])
        raise SchemaError(f"{key}: unknown key (known keys here: {', '.join(fields)})")
    values = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name in raw:
            values[name] = _coerce(raw[name], hints[name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SchemaError(f"{key}: required key is missing")
    return cls(**values)
