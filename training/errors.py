"""Errors a training run reports to the user: each becomes a message and a non-zero exit."""


class TrainingError(Exception):
    """A run that cannot go on; the message says why and nothing is published."""

    kind = "error"


class ConfigError(TrainingError, ValueError):
    """The config file is unreadable or a key in it is wrong."""

    kind = "config error"


class DataError(TrainingError, ValueError):
    """The data cannot be used for training (too few rows, a single class, ...)."""

    kind = "data error"


class ExportError(TrainingError, RuntimeError):
    """An artifact could not be written, converted or verified."""

    kind = "export failed"


class GateRefused(TrainingError):
    """The quality gate refused the model; the run report says by how much."""

    kind = "quality gate"


class ImportRefused(ConfigError):
    """``tfship import`` cannot use what it was given (the source, a flag, the target)."""

    kind = "cannot import"
