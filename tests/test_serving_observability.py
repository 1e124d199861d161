"""What a real gunicorn server (ONNX runtime, two workers) reports about the requests it
answers: metrics summed over workers, health and readiness, request ids, the access log, the
proxy's queue time."""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from conftest import Server, http

ROW = np.zeros((8, 8, 1)).tolist()


def access_log(text: str) -> list[dict[str, Any]]:
    """The access log entries (JSON lines from the tfship.access logger) in a server log."""
    entries = []
    for line in text.splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry["logger"] == "tfship.access":
                entries.append(entry)
    return entries


def _counter(text: str, name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total


def test_metrics_count_every_request_across_workers(onnx_server: Server) -> None:
    def scrape() -> str:
        answer = onnx_server.get("/metrics")
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain")
        return answer.body.decode()

    before = scrape()
    ok, bad, missing = 60, 5, 3
    calls = (
        [("digits", [ROW], 200)] * ok
        + [("digits", [[1]], 400)] * bad
        + [("ghost", [ROW], 404)] * missing
    )
    log_start = len(onnx_server.log())
    # Concurrent (bounded: 68 requests, 8 at a time) so that both workers answer some.
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(
            pool.map(
                lambda call: (
                    onnx_server.post(
                        f"/v1/models/{call[0]}:predict", {"instances": call[1]}
                    ).status,
                    call[2],
                ),
                calls,
            )
        )
    assert all(got == want for got, want in statuses)
    after = scrape()
    access_lines = [
        entry
        for entry in access_log(onnx_server.log()[log_start:])
        if entry["path"] == "/v1/models/digits:predict"
    ]
    pids = {entry["pid"] for entry in access_lines}
    assert len(access_lines) == ok + bad
    assert len(pids) == 2, "both workers must have answered for this test to mean anything"

    def moved(name: str, **labels: str) -> float:
        return _counter(after, name, **labels) - _counter(before, name, **labels)

    # Each worker counts only what it answered; a scrape must still see the sum of both.
    assert (
        moved("tfship_requests_total", model="digits", version="1", api="predict", status="200")
        == ok
    )
    assert (
        moved("tfship_requests_total", model="digits", version="1", api="predict", status="400")
        == bad
    )
    # Made-up model names never become label values.
    assert moved("tfship_requests_total", model="", api="predict", status="404") == missing
    assert "ghost" not in after
    assert moved("tfship_request_duration_seconds_count", model="digits", api="predict") == ok + bad
    assert (
        moved("tfship_request_duration_seconds_bucket", model="digits", api="predict", le="+Inf")
        == ok + bad
    )
    # Model compute: only requests that reached the runtime, one row each.
    assert moved("tfship_inference_duration_seconds_count", model="digits", runtime="onnx") == ok
    assert moved("tfship_batch_size_sum", model="digits") == ok
    # Gauges: every held version was released; both workers agree one version is available.
    assert _counter(after, "tfship_in_flight_requests", model="digits") == 0
    assert _counter(after, "tfship_model_versions", model="digits", state="AVAILABLE") == 1
    assert _counter(after, "tfship_model_versions", model="digits", state="FAILED") == 0
    # Process figures: one series per live worker, whichever worker answered the scrape.
    memory = {
        int(pid): float(value)
        for pid, value in re.findall(
            r'^tfship_process_resident_memory_bytes\{pid="(\d+)"\} (\S+)$', after, re.M
        )
    }
    assert set(memory) == pids
    assert all(20 * 2**20 < rss < 2**30 for rss in memory.values()), memory


def test_health_and_readiness(onnx_server: Server) -> None:
    assert onnx_server.get("/healthz").json() == {"status": "ok"}
    ready = onnx_server.get("/readyz")
    assert ready.status == 200
    assert ready.json() == {
        "ready": True,
        "models": {
            "digits": {
                "runtime": "onnx",
                "version_policy": "latest 1",
                "serving": 1,
                "versions": [{"version": 1, "state": "AVAILABLE", "verified": True}],
            }
        },
        # Ready means every worker is: the load balancer may reach any of them.
        "workers": {"ready": 2, "expected": 2},
    }


def test_request_ids_and_the_access_log(onnx_server: Server) -> None:
    import urllib.request

    def predict(request_id: str | None) -> str:
        headers = {"Content-Type": "application/json"}
        if request_id is not None:
            headers["X-Request-ID"] = request_id
        request = urllib.request.Request(
            onnx_server.url + "/v1/models/digits:predict",
            data=json.dumps({"instances": [ROW]}).encode(),
            headers=headers,
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.headers["X-Request-ID"]

    log_start = len(onnx_server.log())
    assert predict("client-id-17") == "client-id-17"
    generated = predict(None)
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    # Ids that could break a log line are replaced, not logged.
    replaced = predict('bad id "quoted" {json}')
    assert re.fullmatch(r"[0-9a-f]{32}", replaced)
    assert predict("x" * 129) != "x" * 129

    time.sleep(0.2)  # let the workers flush their log lines
    entries = {e["request_id"]: e for e in access_log(onnx_server.log()[log_start:])}
    entry = entries["client-id-17"]
    assert entry["message"] == "request"
    assert (entry["method"], entry["path"], entry["status"]) == (
        "POST",
        "/v1/models/digits:predict",
        200,
    )
    assert (entry["protocol"], entry["api"], entry["model"], entry["version"]) == (
        "tfserving",
        "predict",
        "digits",
        "1",
    )
    assert entry["latency_ms"] > 0 and isinstance(entry["pid"], int)
    assert generated in entries and replaced in entries
    assert "bad id" not in onnx_server.log()[log_start:]


def test_queue_time_from_the_proxys_request_start_header(onnx_server: Server) -> None:
    def queue(metrics: str) -> tuple[float, float]:
        return (
            _counter(metrics, "tfship_queue_duration_seconds_count", protocol="tfserving"),
            _counter(metrics, "tfship_queue_duration_seconds_sum", protocol="tfserving"),
        )

    count, total = queue(onnx_server.get("/metrics").body.decode())
    url = onnx_server.url + "/v1/models/digits:predict"
    body = {"instances": [ROW]}
    now = time.time()
    for header in (f"t={now - 0.25:.3f}", f"t={int((now - 0.25) * 1000)}", "t=junk"):
        assert http("POST", url, body, headers={"X-Request-Start": header}).status == 200
    assert http("POST", url, body).status == 200  # no header: nothing observed
    after_count, after_total = queue(onnx_server.get("/metrics").body.decode())
    assert after_count - count == 2
    assert 0.5 <= after_total - total < 5.0
