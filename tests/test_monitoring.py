"""k8s/monitoring: the ServiceMonitor finds the Service, the alert rules pass promtool and
each one fires on its symptom (promtool test rules), and every metric the rules and the
Grafana dashboard query is one the live service exports."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import ROOT, Server, http
from test_k8s import _kubectl, find
from test_prometheus import _tool

MONITORING = ROOT / "k8s" / "monitoring"


@pytest.fixture(scope="module")
def monitoring() -> list[dict[str, Any]]:
    result = subprocess.run(
        [_kubectl(), "kustomize", str(MONITORING)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _rules_file(docs: list[dict[str, Any]], tmp_path: Path) -> Path:
    rule = find(docs, "PrometheusRule")
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    return path


def _dashboard(docs: list[dict[str, Any]]) -> dict[str, Any]:
    config_map = find(docs, "ConfigMap", "tfship-grafana-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"  # the sidecar's label
    return json.loads(config_map["data"]["tfship-dashboard.json"])


def _dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_service_monitor_selects_the_service_port(monitoring: list[dict[str, Any]]) -> None:
    base = subprocess.run(
        [_kubectl(), "kustomize", str(ROOT / "k8s")], capture_output=True, text=True, timeout=120
    )
    service = find([d for d in yaml.safe_load_all(base.stdout) if d], "Service", "tfship")
    monitor = find(monitoring, "ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    ports = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in ports and endpoint["path"] == "/metrics"


def test_alert_rules_pass_promtool(monitoring: list[dict[str, Any]], tmp_path: Path) -> None:
    rules = _rules_file(monitoring, tmp_path)
    result = subprocess.run(
        [_tool("promtool"), "check", "rules", str(rules)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    count = len(find(monitoring, "PrometheusRule")["spec"]["groups"][0]["rules"])
    assert count == 7  # errors, latency, load failures, no model, down, input and prediction drift
    assert f"SUCCESS: {count} rules found" in result.stdout


def test_each_alert_fires_on_its_symptom(monitoring: list[dict[str, Any]], tmp_path: Path) -> None:
    """promtool's unit tests (tests/alerts_test.yaml): series with each symptom, the alert
    with its labels and rendered annotations at the time it must fire, and none for the
    healthy model."""
    tests = yaml.safe_load((ROOT / "tests" / "alerts_test.yaml").read_text())
    tests["rule_files"] = [str(_rules_file(monitoring, tmp_path))]
    path = tmp_path / "alerts_test.yaml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = subprocess.run(
        [_tool("promtool"), "test", "rules", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {case["alertname"] for case in tests["tests"][0]["alert_rule_test"]}
    rules = find(monitoring, "PrometheusRule")["spec"]["groups"][0]["rules"]
    assert tested == {rule["alert"] for rule in rules}, "every alert has a test"


def test_dashboard_and_rules_query_only_exported_metrics(
    monitoring: list[dict[str, Any]], onnx_server: Server, tmp_path: Path
) -> None:
    row = np.zeros((8, 8, 1)).tolist()
    # A proxy's X-Request-Start makes the REST queue time observable (as behind nginx).
    answer = http(
        "POST",
        onnx_server.url + "/v1/models/digits:predict",
        {"instances": [row]},
        headers={"X-Request-Start": f"t={time.time():.3f}"},
    )
    assert answer.status == 200
    # Drift scores reach the scrape from the other worker within a second (its file).
    deadline = time.monotonic() + 10
    while True:
        exposition = onnx_server.get("/metrics").body.decode()
        exported = {
            line.split("{")[0].split(" ")[0] for line in exposition.splitlines() if line[:1] != "#"
        }
        if "tfship_input_drift_score" in exported or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    dashboard = _dashboard(monitoring)
    rule_exprs = [
        r["expr"] for g in find(monitoring, "PrometheusRule")["spec"]["groups"] for r in g["rules"]
    ]
    exprs = _dashboard_exprs(dashboard)
    assert len(exprs) >= 10
    for expr in exprs + rule_exprs:
        for name in re.findall(r"\btfship_[a-z_]+", expr):
            assert name in exported, f"{name} (in {expr!r}) is not exported by the service"
    # Every dashboard query is valid PromQL: promtool checks them as recording rules.
    recording = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query{i}", "expr": e.replace("$__rate_interval", "5m")}
                    for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard_rules.yaml"
    path.write_text(yaml.safe_dump(recording))
    result = subprocess.run(
        [_tool("promtool"), "check", "rules", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    panel_ids = [p["id"] for p in dashboard["panels"]]
    assert len(set(panel_ids)) == len(panel_ids) and dashboard["uid"] == "tfship"
