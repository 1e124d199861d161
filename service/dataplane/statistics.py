"""Per-version inference statistics (Triton's statistics extension), read back from the
metrics every worker writes (service/metrics.py), so that any worker answers for all: the
request counter and the request, compute, batch size and batching queue histograms, which
carry a version label, and two series kept for this (failed requests' time, the last
inference).

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

# The metric families read, and which figure each one feeds.
_FAMILIES = {
    "tfship_requests": "requests",
    "tfship_request_duration_seconds": "request_time",
    "tfship_version_failed_request_seconds": "failed_time",
    "tfship_inference_duration_seconds": "compute",
    "tfship_batch_size": "rows",
    "tfship_batch_queue_duration_seconds": "queue",
    "tfship_version_last_inference_timestamp_seconds": "last",
}


@dataclass
class Duration:
    count: int = 0
    seconds: float = 0.0

    @property
    def ns(self) -> int:
        return max(0, round(self.seconds * 1e9))


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
            except (KeyError, ValueError):  # no version: the request never reached one
                continue
            if stats is not None:
                _add(stats, kind, sample.name, labels, sample.value)
    for name, version, batched in versions:
        stats = found[(name, version)]
        # The request histogram times success and fail together; fail is timed apart.
        stats.success.seconds -= stats.fail.seconds
        if not batched:  # one runtime call per request, straight from its thread
            stats.queue = Duration(stats.compute.count, 0.0)
    return list(found.values())


def _add(
    stats: VersionStatistics, kind: str, sample: str, labels: dict[str, str], value: float
) -> None:
    inference = labels.get("api") in metrics.INFERENCE_APIS
    if kind == "requests" and inference and sample.endswith("_total"):
        counted = stats.success if labels.get("status") == "200" else stats.fail
        counted.count += int(value)
    elif kind == "request_time" and inference and sample.endswith("_sum"):
        stats.success.seconds += value  # fail's share taken out once all are read
    elif kind == "failed_time" and sample.endswith("_total"):
        stats.fail.seconds += value
    elif kind == "rows" and sample.endswith("_sum"):
        stats.inference_count += int(value)
    elif kind == "last":
        stats.last_inference = max(stats.last_inference, value)
    elif kind in ("compute", "queue"):
        duration = stats.compute if kind == "compute" else stats.queue
        if sample.endswith("_count"):
            duration.count += int(value)
        elif sample.endswith("_sum"):
            duration.seconds += value
