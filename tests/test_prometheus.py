"""A real Prometheus (Debian's) scrapes the server; its query API reads back the counters.
Also ``promtool check metrics`` on the exposition. CI installs prometheus (.ci/run)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import Server, free_port

ROW = np.zeros((8, 8, 1)).tolist()
QUERY = 'sum(tfship_requests_total{model="digits",api="predict",protocol="tfserving",status="%s"})'


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed; .ci/run installs Debian's prometheus")
        pytest.skip(f"{name} is not installed (apt-get install prometheus)")
    return path


def _direct(server: Server, status: str) -> float:
    total = 0.0
    for line in server.get("/metrics").body.decode().splitlines():
        if (
            line.startswith("tfship_requests_total{")
            and 'api="predict"' in line
            and 'model="digits"' in line
            and 'protocol="tfserving"' in line
            and f'status="{status}"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _query(port: int, expression: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
    with urllib.request.urlopen(url, timeout=10) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def test_prometheus_scrapes_the_counters_across_workers(
    onnx_server: Server, tmp_path: Path
) -> None:
    prometheus = _tool("prometheus")
    for _ in range(37):
        assert onnx_server.post("/v1/models/digits:predict", {"instances": [ROW]}).status == 200
    for _ in range(3):
        assert onnx_server.post("/v1/models/digits:predict", {"instances": [[1]]}).status == 400
    expected = {"200": _direct(onnx_server, "200"), "400": _direct(onnx_server, "400")}
    assert expected["200"] >= 37 and expected["400"] >= 3

    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: tfship\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{onnx_server.port}']\n"
    )
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        seen: dict[str, float] = {}
        while True:
            try:
                for status in expected:
                    result = _query(port, QUERY % status)
                    seen[status] = float(result[0]["value"][1]) if result else -1
                up = _query(port, 'up{job="tfship"}')
                if seen == expected and up and up[0]["value"][1] == "1":
                    break
            except OSError:
                pass  # not listening yet
            assert process.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
            assert time.monotonic() < deadline, f"Prometheus saw {seen}, expected {expected}"
            time.sleep(0.5)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_promtool_accepts_the_exposition(onnx_server: Server) -> None:
    promtool = _tool("promtool")
    exposition = onnx_server.get("/metrics").body
    result = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == b"" and result.stderr.strip() == b"", "no lint warnings"
