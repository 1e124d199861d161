"""Which install profile (pip extra) a command needs, and a clear refusal when it is missing.

``pip install tfship`` is the ONNX server alone; training, export and the SavedModel
runtime come with extras (pyproject.toml). A command run without its extra would otherwise
die deep inside with ``ModuleNotFoundError: No module named 'tensorflow'``. Standard library
only, and nothing is imported: ``find_spec`` on a top-level name only locates it.
"""

from __future__ import annotations

import importlib.util

# Extra -> the top-level modules its packages provide (the import names, not the
# distribution names: scikit-learn is ``sklearn``).
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "train": (
        "tensorflow",
        "keras",
        "tf2onnx",
        "onnx",
        "sklearn",
        "pandas",
        "matplotlib",
        "PIL",
        "onnxconverter_common",
        "optuna",
        "tensorflow_serving",
    ),
    "savedmodel": ("tensorflow",),
}


class MissingExtra(RuntimeError):
    """A command needs an extra this install lacks; the message says what to install."""

    def __init__(self, what: str, extra: str, missing: list[str]) -> None:
        self.extra = extra
        self.missing = missing
        super().__init__(
            f"{what} needs the '{extra}' install profile, which this install lacks "
            f"(no module {', '.join(missing)}): pip install 'tfship[{extra}]'"
        )


def missing_modules(extra: str) -> list[str]:
    return [m for m in EXTRA_MODULES[extra] if importlib.util.find_spec(m) is None]


def require(extra: str, what: str) -> None:
    """Raise MissingExtra naming ``extra`` when any of its modules is not installed."""
    missing = missing_modules(extra)
    if missing:
        raise MissingExtra(what, extra, missing)
