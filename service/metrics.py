"""All Prometheus metrics of the service, and their exposition.

Under gunicorn every worker is a process with its own counters; prometheus-client's
multi-process mode (``PROMETHEUS_MULTIPROC_DIR``, set up by gunicorn.conf.py before any
worker starts) makes ``/metrics`` report the sum over all workers, whichever one answers.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

from service.drift.scores import TOP_FEATURES, VersionScores

# Label for requests that name no served model: keeps label values bounded whatever
# names clients send.
NO_MODEL = ""

REQUESTS = Counter(
    "tfship_requests",
    "API requests answered, by model, version, protocol, API and HTTP status.",
    ["model", "version", "protocol", "api", "status"],
)
REQUEST_LATENCY = Histogram(
    "tfship_request_duration_seconds",
    "Time from request received to response ready, by model, version, protocol and API.",
    ["model", "version", "protocol", "api"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

QUEUE_SECONDS = Histogram(
    "tfship_queue_duration_seconds",
    "Time a request waited before tfship began work on it, by protocol: for gRPC the wait "
    "for a free thread of the worker's pool; for REST the time since the proxy's "
    "X-Request-Start header (observed only when a proxy sets it).",
    ["protocol"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

# Answered by the HTTP worker before the app saw a request (service/http_server/), so
# not in tfship_requests_total: slow clients timed out, framing refused, the connection cap.
HTTP_REFUSED = Counter(
    "tfship_http_refused",
    "HTTP connections answered and closed before a request reached the app, by reason "
    "(header_timeout, body_timeout, too_many_connections, malformed, too_large).",
    ["reason"],
)
HTTP_REFUSAL_REASONS = (
    "header_timeout",
    "body_timeout",
    "too_many_connections",
    "malformed",
    "too_large",
)

CAPTURED = Counter(
    "tfship_captured_requests",
    "Requests sampled for capture (TFSHIP_CAPTURE_DIR), by result: written, dropped (the "
    "writer's queue was full: the request was answered, its record not kept), failed (the "
    "file could not be written).",
    ["result"],
)

MODEL_LOADS = Counter(
    "tfship_model_loads",
    "Version loads by model and result (ok, failed), counted in every worker.",
    ["model", "result"],
)
MODEL_LOAD_SECONDS = Histogram(
    "tfship_model_load_duration_seconds",
    "Time to verify, load and warm up one version, by model.",
    ["model"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
)


INFERENCE_SECONDS = Histogram(
    "tfship_inference_duration_seconds",
    "Time spent in the runtime (model compute only, no parsing), by model, version and runtime.",
    ["model", "version", "runtime"],
    buckets=(
        0.0001,
        0.00025,
        0.0005,
        0.001,
        0.0025,
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        0.5,
        1.0,
        2.5,
    ),
)
BATCH_SIZE = Histogram(
    "tfship_batch_size",
    "Rows per call into the runtime, by model and version.",
    ["model", "version"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096),
)
BATCH_QUEUE_SECONDS = Histogram(
    "tfship_batch_queue_duration_seconds",
    "Time a request waited in its model's batching queue before its batch ran (0 for one "
    "too large to batch), by model and version (models with batching on only).",
    ["model", "version"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
# Gauges in multi-process mode: "livesum" adds the live workers' values, "livemax" takes
# the largest (every worker loads the same versions, so the largest is the server's view).
IN_FLIGHT = Gauge(
    "tfship_in_flight_requests",
    "Requests holding a model version right now, summed over workers.",
    ["model"],
    multiprocess_mode="livesum",
)
BATCH_QUEUED_ROWS = Gauge(
    "tfship_batch_queued_rows",
    "Rows waiting in batching queues right now, summed over workers, by model.",
    ["model"],
    multiprocess_mode="livesum",
)
MODEL_VERSIONS = Gauge(
    "tfship_model_versions",
    "Versions of a model in each state (START, LOADING, AVAILABLE, UNLOADING, END, and "
    "FAILED for a version that ended with an error).",
    ["model", "state"],
    multiprocess_mode="livemax",
)
VERSION_STATES = ("START", "LOADING", "AVAILABLE", "UNLOADING", "END", "FAILED")
VERSION_INFO = Gauge(
    "tfship_model_version_info",
    "1 for each version being served, 0 once unloaded; label verified is false for a "
    "version without metadata.json (a TF Serving or Triton layout), whose files no "
    "checksum covers.",
    ["model", "version", "runtime", "verified"],
    multiprocess_mode="livemax",
)


# Triton's statistics extension (service/dataplane/statistics.py) reads the per-version
# series above back, summed over workers; these two complete them. Nothing else is written
# per request for it: every write to a multi-process metric costs microseconds.
INFERENCE_APIS = frozenset({"predict", "classify", "regress", "infer"})
FAILED_REQUEST_SECONDS = Counter(
    "tfship_version_failed_request_seconds",
    "Time of inference requests (predict, classify, regress, infer) that reached a version "
    "and failed, from received to response ready, by model and version.",
    ["model", "version"],
)
LAST_INFERENCE = Gauge(
    "tfship_version_last_inference_timestamp_seconds",
    "When a version last answered an inference request, in seconds since the epoch (to "
    "within 0.1 s: each worker writes it at most ten times a second).",
    ["model", "version"],
    multiprocess_mode="max",
)
LAST_INFERENCE_EVERY = 0.1


def set_version_states(model: str, counts: dict[str, int]) -> None:
    """Every state's count, zeros included, so a state that empties does not linger."""
    for state in VERSION_STATES:
        MODEL_VERSIONS.labels(model, state).set(counts.get(state, 0))


def set_version_info(model: str, version: int, runtime: str, verified: bool, on: bool) -> None:
    VERSION_INFO.labels(model, str(version), runtime, "true" if verified else "false").set(
        1 if on else 0
    )


# Process metrics per worker. prometheus-client's own process collector does not work in
# multi-process mode (it would describe only the worker that answers the scrape), so each
# worker copies its values into these gauges; "liveall" keeps one series per live worker
# (label pid) and drops those of workers that have exited.
_PROCESS_GAUGES = {
    name: Gauge(f"tfship_{name}", text, multiprocess_mode="liveall")
    for name, text in (
        ("process_resident_memory_bytes", "Resident memory of each worker, in bytes."),
        ("process_virtual_memory_bytes", "Virtual memory of each worker, in bytes."),
        ("process_cpu_seconds", "CPU time (user + system) each worker has used, in seconds."),
        ("process_open_fds", "Open file descriptors of each worker."),
        ("process_start_time_seconds", "Start time of each worker, in seconds since the epoch."),
    )
}
PROCESS_METRICS_SECONDS = 5.0


def update_process_metrics() -> None:
    """Copy this process's figures (from /proc, via prometheus-client) into the gauges."""
    from prometheus_client.process_collector import ProcessCollector

    for family in ProcessCollector(registry=None).collect():
        for sample in family.samples:
            name = sample.name.removesuffix("_total")
            if name in _PROCESS_GAUGES:
                _PROCESS_GAUGES[name].set(sample.value)


def start_process_metrics() -> None:
    """Refresh the process gauges every few seconds, in a daemon thread of this worker."""

    def run() -> None:
        while True:
            update_process_metrics()
            time.sleep(PROCESS_METRICS_SECONDS)

    threading.Thread(target=run, name="process-metrics", daemon=True).start()


# Label children cached per label values: ``labels()`` costs more than the increment itself
# on the request path. The caches hold the same label sets the metrics already hold, so
# they are bounded the same way (NO_MODEL for unknown names).
_inference_children: dict[tuple[str, int, str], tuple[Any, Any]] = {}
_request_children: dict[tuple[str, str, str, str, int], list[Any]] = {}


def observe_inference(model: str, version: int, runtime: str, rows: int, seconds: float) -> None:
    key = (model, version, runtime)
    children = _inference_children.get(key)
    if children is None:
        children = (
            INFERENCE_SECONDS.labels(model, str(version), runtime),
            BATCH_SIZE.labels(model, str(version)),
        )
        _inference_children[key] = children
    children[0].observe(seconds)
    children[1].observe(rows)


def observe_load(model: str, ok: bool, seconds: float) -> None:
    MODEL_LOADS.labels(model, "ok" if ok else "failed").inc()
    if ok:
        MODEL_LOAD_SECONDS.labels(model).observe(seconds)


def observe_request(
    model: str, version: str, protocol: str, api: str, status: int, seconds: float
) -> None:
    key = (model, version, protocol, api, status)
    children = _request_children.get(key)
    if children is None:
        counted = bool(version) and api in INFERENCE_APIS  # reached a version's statistics
        children = [
            REQUESTS.labels(model, version, protocol, api, str(status)),
            REQUEST_LATENCY.labels(model, version, protocol, api),
            FAILED_REQUEST_SECONDS.labels(model, version) if counted and status != 200 else None,
            LAST_INFERENCE.labels(model, version) if counted and status == 200 else None,
            0.0,  # when this worker last wrote LAST_INFERENCE for this key
        ]
        _request_children[key] = children
    children[0].inc()
    children[1].observe(seconds)
    if children[2] is not None:
        children[2].inc(seconds)
    elif children[3] is not None:
        now = time.time()
        if now - children[4] >= LAST_INFERENCE_EVERY:
            children[3].set(now)
            children[4] = now


def observe_queue(protocol: str, seconds: float) -> None:
    QUEUE_SECONDS.labels(protocol).observe(max(0.0, seconds))


# Drift scores (service/drift/): computed when scraped from the windows of all workers,
# so they are families built per scrape rather than metrics written per request.
DRIFT_FAMILIES = {
    "tfship_input_drift_score": (
        "Population stability index of an input over the latest requests against the "
        "training baseline: the mean of its features' (0 stable; above 0.25 a major shift).",
        ["model", "version", "input"],
    ),
    "tfship_feature_drift_score": (
        "Population stability index of one feature of an input against the training "
        f"baseline; the {TOP_FEATURES} highest per input.",
        ["model", "version", "input", "feature"],
    ),
    "tfship_prediction_drift_score": (
        "Population stability index of the predicted classes (or predicted values) over "
        "the latest requests against the test split's.",
        ["model", "version"],
    ),
    "tfship_drift_window_rows": (
        "Rows in the window the drift scores are computed over (at most TFSHIP_DRIFT_WINDOW).",
        ["model", "version"],
    ),
}


def drift_families(scores: Iterable[VersionScores]) -> list[GaugeMetricFamily]:
    families = {
        name: GaugeMetricFamily(name, text, labels=labels)
        for name, (text, labels) in DRIFT_FAMILIES.items()
    }
    for version_scores in scores:
        model, version = version_scores.model, str(version_scores.version)
        families["tfship_drift_window_rows"].add_metric([model, version], version_scores.rows)
        if version_scores.predictions is not None:
            families["tfship_prediction_drift_score"].add_metric(
                [model, version], version_scores.predictions
            )
        for name, value in version_scores.inputs.items():
            families["tfship_input_drift_score"].add_metric([model, version, name], value)
            for feature in version_scores.features_of(name)[:TOP_FEATURES]:
                families["tfship_feature_drift_score"].add_metric(
                    [model, version, name, feature.feature], feature.score
                )
    return list(families.values())


class _Families:
    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> list[Any]:
        return self.families


def collect(names: frozenset[str]) -> list[Any]:
    """The metric families named, summed over workers in multi-process mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        families = registry.collect()
    else:
        families = REGISTRY.collect()
    return [family for family in families if family.name in names]


def exposition(drift: Iterable[VersionScores] = ()) -> tuple[bytes, str]:
    """The text format for ``/metrics``: summed over workers in multi-process mode, with
    the drift scores given (computed by the caller over every worker's window)."""
    update_process_metrics()  # the answering worker's figures are exact, not 5 s old
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    scores = list(drift)
    if scores:
        extra = CollectorRegistry(auto_describe=False)
        extra.register(_Families(drift_families(scores)))
        body += generate_latest(extra)
    return body, CONTENT_TYPE_LATEST
