"""A version's baseline profile as bins that request values are counted into.

Every feature of every input, and the predictions, get consecutive *slots* of one flat
count vector per version: a numeric feature one slot per quantile bin plus one for missing
values (NaN, infinity); a categorical one a slot per known value, one for values the train
split never had, one for missing (null or empty); an image channel one per intensity bin
plus missing; the predictions one per class, or the prediction quantile bins plus missing.
One vector lets a request's rows be counted with a single ``numpy.bincount``.

The expected share of each slot comes from the profile (``training/baseline_profile.py``
defines how its bins were made; the same rules place request values here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.drift.scores import Layout


class ProfileError(ValueError):
    """A baseline profile this server cannot read (a newer format, a damaged file)."""


@dataclass(frozen=True)
class Feature:
    """One feature's slots ``start:stop`` in the version's count vector."""

    input: str  # the model input; "" for the predictions
    name: str  # "value", "[3]", "intensity", ...; "predictions" for the predictions
    start: int
    stop: int
    expected: np.ndarray  # expected share of each slot, summing to 1
    kind: str = "numeric"  # numeric, categorical (its last two slots: unseen, missing), ...


class _InputBins:
    """Places one input's request values into its features' slots."""

    features: list[Feature]
    # How many equal parts ``slots`` concatenates, each in row order (an image: one per
    # channel): what tells which row each slot came from.
    parts = 1

    def slots(self, values: np.ndarray) -> np.ndarray | None:
        """Slot indices, one per counted value; None when the values do not have the shape
        the profile describes (they are then left uncounted, not guessed at)."""
        raise NotImplementedError


def _numeric_expected(spec: Mapping[str, Any]) -> np.ndarray:
    missing = float(spec.get("missing_rate", 0.0))
    shares = np.asarray(spec.get("shares") or [], dtype=np.float64)
    if not len(shares):  # the train split had no finite value at all
        return np.array([0.0, 1.0])
    return np.append(shares / max(shares.sum(), 1e-12) * (1.0 - missing), missing)


class _NumericColumns(_InputBins):
    """Columns of a [-1] / [-1, 1] value or a [-1, F] matrix: quantile bins per column.

    Bin ``i`` holds ``edges[i-1] < v <= edges[i]``: the count of edges below ``v``.
    """

    def __init__(self, input_name: str, specs: list[tuple[str, Mapping[str, Any]]], at: int):
        self.features = []
        edge_lists = [[float(e) for e in spec.get("edges") or []] for _, spec in specs]
        width = max((len(e) for e in edge_lists), default=0)
        # Padded with +inf, which no finite value exceeds: each row of comparisons counts
        # only that column's own edges.
        self.edges = np.full((len(specs), max(width, 1)), np.inf)
        self.value_slots = np.empty(len(specs), dtype=np.int64)
        for column, ((name, spec), edges) in enumerate(zip(specs, edge_lists, strict=True)):
            self.edges[column, : len(edges)] = edges
            expected = _numeric_expected(spec)
            self.value_slots[column] = at
            self.features.append(Feature(input_name, name, at, at + len(expected), expected))
            at += len(expected)
        self.missing_slots = np.array([f.stop - 1 for f in self.features], dtype=np.int64)
        self.columns = len(specs)

    def slots(self, values: np.ndarray) -> np.ndarray | None:
        if values.dtype.kind not in "iufb":
            return None
        rows = values.reshape(len(values), -1) if values.ndim else values.reshape(1, 1)
        if rows.shape[1] != self.columns:
            return None
        # One comparison per edge over the whole (rows, columns) matrix: contiguous passes,
        # several times faster than summing a (rows, columns, edges) cube on its last axis.
        found = np.broadcast_to(self.value_slots, rows.shape).copy()
        for edge in self.edges.T:
            found += rows > edge
        if values.dtype.kind == "f":
            missing = ~np.isfinite(rows)
            if missing.any():
                found = np.where(missing, self.missing_slots, found)
        return found.reshape(-1)


class _Categorical(_InputBins):
    def __init__(self, input_name: str, name: str, spec: Mapping[str, Any], at: int):
        shares = spec.get("values") or {}
        if not isinstance(shares, Mapping):
            raise ProfileError(f"input '{input_name}': categorical 'values' is not a mapping")
        self.index = {str(value): at + i for i, value in enumerate(shares)}
        missing = float(spec.get("missing_rate", 0.0))
        known = np.asarray(list(shares.values()), dtype=np.float64)
        known = known / max(known.sum(), 1e-12) * (1.0 - missing) if len(known) else known
        expected = np.concatenate([known, [float(spec.get("unseen_rate", 0.0)), missing]])
        self.unseen = at + len(shares)
        self.missing = self.unseen + 1
        self.features = [Feature(input_name, name, at, self.missing + 1, expected, "categorical")]

    def slots(self, values: np.ndarray) -> np.ndarray | None:
        found = np.empty(values.size, dtype=np.int64)
        for i, value in enumerate(values.reshape(-1).tolist()):
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            if value is None or value == "":
                found[i] = self.missing
            else:
                found[i] = self.index.get(str(value), self.unseen)
        return found


class _Intensities(_InputBins):
    """Images and sequences: per channel (the last axis), intensity bins as
    ``numpy.histogram`` made them (half-open, the last closed); values outside the train
    split's range fall into the end bins."""

    def __init__(self, input_name: str, spec: Mapping[str, Any], at: int):
        channels = spec.get("channels") or []
        self.features = []
        self.inner: list[np.ndarray] = []
        for c, channel in enumerate(channels):
            edges = [float(e) for e in channel.get("edges") or []]
            shares = np.asarray(channel.get("shares") or [], dtype=np.float64)
            if len(edges) != len(shares) + 1 or not len(shares):
                raise ProfileError(f"input '{input_name}': channel {c} edges do not fit shares")
            expected = np.append(shares / max(shares.sum(), 1e-12), 0.0)
            name = "intensity" if len(channels) == 1 else f"intensity[{c}]"
            self.features.append(
                Feature(input_name, name, at, at + len(expected), expected, "intensity")
            )
            self.inner.append(np.asarray(edges[1:-1]))
            at += len(expected)
        self.parts = max(1, len(self.features))

    def slots(self, values: np.ndarray) -> np.ndarray | None:
        if values.dtype.kind not in "iuf" or values.ndim < 2:
            return None
        per_channel = values.reshape(-1, values.shape[-1])
        if per_channel.shape[1] != len(self.features):
            return None
        parts = []
        for c, (feature, inner) in enumerate(zip(self.features, self.inner, strict=True)):
            column = per_channel[:, c]
            found = feature.start + np.searchsorted(inner, column, side="right")
            if values.dtype.kind == "f":
                missing = ~np.isfinite(column)
                if missing.any():
                    found = np.where(missing, feature.stop - 1, found)
            parts.append(found)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


class _Predictions:
    """The model's first output: the predicted class (argmax), or its values' bins."""

    def __init__(self, spec: Mapping[str, Any], at: int):
        if spec.get("kind") == "classes":
            shares = spec.get("shares") or {}
            expected = np.asarray(list(shares.values()), dtype=np.float64)
            self.classes = len(expected)
            self.values: _NumericColumns | None = None
            self.feature = Feature(
                "", "predictions", at, at + self.classes,
                expected / max(expected.sum(), 1e-12), "classes",
            )  # fmt: skip
        else:
            self.classes = 0
            self.values = _NumericColumns("", [("predictions", spec)], at)
            self.feature = self.values.features[0]

    def slots(self, output: np.ndarray) -> np.ndarray | None:
        if self.values is not None:
            return self.values.slots(output.reshape(-1, 1))
        if output.ndim != 2 or output.shape[1] != self.classes:
            return None
        return self.feature.start + output.argmax(axis=1)


class Reference:
    """A version's bins: what each request value counts towards, and what was expected."""

    def __init__(self, profile: Mapping[str, Any]) -> None:
        if profile.get("format", 1) != 1:
            raise ProfileError(f"baseline_profile format {profile.get('format')} is not known")
        inputs = profile.get("inputs")
        if not isinstance(inputs, Mapping):
            raise ProfileError("baseline_profile has no 'inputs'")
        at = 0
        self.inputs: dict[str, _InputBins] = {}
        for name, described in inputs.items():
            bins = _input_bins(name, described.get("features") or {}, at)
            if bins is None:
                continue
            self.inputs[name] = bins
            at = bins.features[-1].stop
        predictions = profile.get("predictions")
        self.predictions = _Predictions(predictions, at) if predictions else None
        self.features: list[Feature] = [f for b in self.inputs.values() for f in b.features]
        if self.predictions is not None:
            self.features.append(self.predictions.feature)
        self.size = self.features[-1].stop if self.features else 0

    def slots(self, inputs: Mapping[str, np.ndarray], prediction: np.ndarray | None) -> np.ndarray:
        """Every counted value's slot, for inputs (and the first output) of some rows."""
        return self.slots_and_rows(inputs, prediction, 0)[0]

    def slots_and_rows(
        self, inputs: Mapping[str, np.ndarray], prediction: np.ndarray | None, rows: int
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The slots, and (for ``rows`` > 0) the row each one came from, so rows spanning
        several window blocks are counted in one pass."""
        found: list[tuple[np.ndarray, int]] = []
        for name, bins in self.inputs.items():
            values = inputs.get(name)
            if values is not None:
                slots = bins.slots(np.asarray(values))
                if slots is not None:
                    found.append((slots, bins.parts))
        if self.predictions is not None and prediction is not None:
            slots = self.predictions.slots(np.asarray(prediction))
            if slots is not None:
                found.append((slots, 1))
        if not found:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64) if rows else None
        slots = found[0][0] if len(found) == 1 else np.concatenate([f for f, _ in found])
        if not rows:
            return slots, None
        row_of = []
        every_row = np.arange(rows, dtype=np.int64)
        for part_slots, parts in found:
            per_row = max(1, len(part_slots) // parts // rows)
            in_order = np.repeat(every_row, per_row)
            row_of.append(np.tile(in_order, parts) if parts > 1 else in_order)
        return slots, row_of[0] if len(row_of) == 1 else np.concatenate(row_of)

    def layout(self) -> Layout:
        return Layout(
            [(f.input, f.name, f.start, f.stop, f.kind == "categorical") for f in self.features],
            np.concatenate([f.expected for f in self.features]) if self.features else np.zeros(0),
        )


def _input_bins(name: str, features: Mapping[str, Any], at: int) -> _InputBins | None:
    kinds = {spec.get("kind") for spec in features.values() if isinstance(spec, Mapping)}
    if not features or len(kinds) != 1:
        return None
    kind = kinds.pop()
    if kind == "numeric":
        return _NumericColumns(name, list(features.items()), at)
    if kind == "categorical":
        ((feature, spec),) = features.items()
        return _Categorical(name, feature, spec, at)
    if kind == "intensity":
        ((_, spec),) = features.items()
        return _Intensities(name, spec, at)
    return None
