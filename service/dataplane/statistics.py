"""Per-version inference statistics (Triton's statistics extension), read back from the
metrics every worker writes (service/metrics.py), so that any worker answers for all.

What tfship measures maps onto Triton's figures as follows; what it does not measure stays
zero rather than being guessed:

- ``success`` / ``fail``: inference requests that reached the version, with their time
  from received to response ready (the request's parsing and encoding included);
- ``queue``: with batching, the requests that waited in the version's batching queue and
  their wait; without, every request that reached the runtime, with no wait (there is no
  queue: the request's own thread calls the runtime);
- ``compute_infer``, ``execution_count``, ``inference_count``: calls into the runtime,
  their time, and the rows they ran;
- ``compute_input`` / ``compute_output``: the runtime calls again, with no time of their
  own: a runtime call's input and output handling is inside its ``compute_infer`` time
  (and the decoding and encoding of the request's tensors in ``success`` only).
  perf_analyzer requires the three compute counts to agree;
- cache and per-batch-size figures: none (no response cache; batch sizes are in the
  ``tfship_batch_size`` histogram).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from service import metrics

_FAMILIES = {
    "tfship_version_request_duration_seconds": "request",
    "tfship_version_compute_duration_seconds": "compute",
    "tfship_version_queue_duration_seconds": "queue",
    "tfship_version_inferences": "rows",
    "tfship_version_last_inference_timestamp_seconds": "last",
}


@dataclass
class Duration:
    count: int = 0
    seconds: float = 0.0

    @property
    def ns(self) -> int:
        return round(self.seconds * 1e9)


@dataclass
class VersionStatistics:
    name: str
    version: int
    last_inference: float = 0.0  # seconds since the epoch; 0 before the first
    inference_count: int = 0
    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    compute: Duration = field(default_factory=Duration)  # its count is Triton's executions


def read_statistics(versions: list[tuple[str, int, bool]]) -> list[VersionStatistics]:
    """Statistics of each (model, version, batching on), in the order given; zeros for one
    never used."""
    found = {(name, version): VersionStatistics(name, version) for name, version, _ in versions}
    for family in metrics.collect(frozenset(_FAMILIES)):
        kind = _FAMILIES[family.name]
        for sample in family.samples:
            labels = sample.labels
            try:
                stats = found.get((labels["model"], int(labels["version"])))
            except (KeyError, ValueError):
                continue
            if stats is not None:
                _add(stats, kind, sample.name, labels.get("result", ""), sample.value)
    for name, version, batched in versions:
        stats = found[(name, version)]
        if not batched:  # one runtime call per request, straight from its thread
            stats.queue = Duration(stats.compute.count, 0.0)
    return list(found.values())


def _add(stats: VersionStatistics, kind: str, sample: str, result: str, value: float) -> None:
    if kind == "rows":
        if sample.endswith("_total"):
            stats.inference_count += int(value)
        return
    if kind == "last":
        stats.last_inference = max(stats.last_inference, value)
        return
    duration = {
        "request": stats.success if result == "success" else stats.fail,
        "compute": stats.compute,
        "queue": stats.queue,
    }[kind]
    if sample.endswith("_count"):
        duration.count += int(value)
    elif sample.endswith("_sum"):
        duration.seconds += value
