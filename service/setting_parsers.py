"""The parsers of setting values: each takes a variable's text and its name and returns the
value, or raises SettingsError naming the variable. service/settings.py declares which
setting uses which."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

RUNTIMES = ("onnx", "savedmodel")


class SettingsError(ValueError):
    """A setting has a value the service cannot use; the message names the variable."""


def parse_model_runtimes(text: str, source: str = "TFSHIP_MODEL_RUNTIMES") -> dict[str, str]:
    """``digits=savedmodel,other=onnx`` -> {"digits": "savedmodel", "other": "onnx"}."""
    result: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, runtime = item.partition("=")
        if not sep or not name.strip():
            raise SettingsError(f"{source}: expected NAME=RUNTIME, got {item!r}")
        runtime = runtime.strip()
        if runtime not in RUNTIMES:
            raise SettingsError(
                f"{source}: runtime {runtime!r} for model {name.strip()!r} is not one of "
                f"{', '.join(RUNTIMES)}"
            )
        result[name.strip()] = runtime
    return result


# --- parsers: (text of the variable, the variable's name) -> value; a bad text raises ---

Parse = Callable[[str, str], Any]


def integer(low: int, high: int) -> Parse:
    def parse(raw: str, key: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{key}: expected an integer, got {raw!r}") from None
        if not low <= value <= high:
            raise SettingsError(f"{key}: must be between {low} and {high}, got {value}")
        return value

    return parse


def number(allow_zero: bool = False, maximum: float | None = None) -> Parse:
    def parse(raw: str, key: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{key}: expected a number, got {raw!r}") from None
        if not (value >= 0 if allow_zero else value > 0) or value != value or value == float("inf"):
            raise SettingsError(
                f"{key}: must be {'zero or more' if allow_zero else 'positive'}, got {raw}"
            )
        if maximum is not None and value > maximum:
            raise SettingsError(f"{key}: must be at most {maximum:g}, got {raw}")
        return value

    return parse


def choice(*choices: str) -> Parse:
    def parse(raw: str, key: str) -> str:
        if raw not in choices:
            raise SettingsError(f"{key}: expected one of {', '.join(choices)}, got {raw!r}")
        return raw

    return parse


def text(raw: str, key: str) -> str:
    return raw


def path(raw: str, key: str) -> Path:
    return Path(raw)


def on_off(raw: str, key: str) -> bool:
    return choice("on", "off")(raw, key) == "on"


# Parts of the API that TFSHIP_AUTH_EXEMPT can leave open without a key.
EXEMPTIBLE = ("health", "metrics", "openapi")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def header_name(value: str, key: str = "TFSHIP_API_KEY_HEADER") -> str:
    if not _HEADER_NAME.match(value) or value.lower() == "authorization":
        raise SettingsError(
            f"TFSHIP_API_KEY_HEADER: expected a header name such as X-API-Key, got {value!r}"
        )
    return value


def exempt_parts(value: str, key: str = "TFSHIP_AUTH_EXEMPT") -> tuple[str, ...]:
    """``health,metrics`` -> ("health", "metrics"); ``none`` -> ()."""
    if value.strip() == "none":
        return ()
    parts = tuple(dict.fromkeys(p.strip() for p in value.split(",") if p.strip()))
    unknown = [p for p in parts if p not in EXEMPTIBLE]
    if unknown:
        raise SettingsError(
            f"TFSHIP_AUTH_EXEMPT: {unknown[0]!r} is not one of {', '.join(EXEMPTIBLE)} (or none)"
        )
    return parts
