"""Drift and capture on a real server (gunicorn, two workers): digits' held-out rows score
under the threshold, inverted or scaled ones above it, the window forgets, the score is
the server's across workers, an unseen category is counted; captured requests land in
rotated files without API keys, and train a model through ``source: capture``."""

from __future__ import annotations

import json
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import (
    DIGITS_CONFIG,
    ExamplesRepo,
    Server,
    TrainedRepo,
    http,
    run_tfship,
    run_training,
)

from service.drift.scores import THRESHOLD

KEY = "drift-test-key-0123456789abcdef"
HEADERS = {"Authorization": f"Bearer {KEY}"}
WINDOW = 1000
CAPTURE_MAX_BYTES = 32 * 1024
CAPTURE_FILES = 3


@pytest.fixture(scope="module")
def held_out() -> tuple[np.ndarray, np.ndarray]:
    """Digits rows the trained model never saw (its val and test splits), and labels."""
    from training.config_file import load_config
    from training.data import prepare_data

    splits = prepare_data(load_config(DIGITS_CONFIG))
    rows = np.concatenate([splits.rows["val"], splits.rows["test"]])
    return splits.dataset.x["pixels"][rows], splits.dataset.y[rows]


@pytest.fixture(scope="module")
def capture_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("capture")


@pytest.fixture(scope="module")
def server(
    trained_repo: TrainedRepo,
    examples_repo: ExamplesRepo,
    start_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
    capture_dir: Path,
) -> Server:
    folder = tmp_path_factory.mktemp("drift")
    repo = folder / "repo"
    shutil.copytree(trained_repo.path / "digits", repo / "digits")
    shutil.copytree(examples_repo.path / "churn", repo / "churn")
    keys = folder / "keys.txt"
    keys.write_text(f"{KEY} name=drift-tester\n")
    started = start_server(
        repo,
        "--workers", "2",
        "--api-keys-file", str(keys),
        "--drift-window", str(WINDOW),
        # Count every row: the test sends faster than the default sampling rate.
        "--drift-sample-rate", "1000000",
        "--capture-dir", str(capture_dir),
        "--capture-max-bytes", str(CAPTURE_MAX_BYTES),
        "--capture-files", str(CAPTURE_FILES),
    )  # fmt: skip
    started.wait_ready()
    return started


def _send(server: Server, model: str, rows: list[Any], per_request: int) -> list[str]:
    """Each request on its own connection (so both workers get some); its request ids."""
    ids = []
    for start in range(0, len(rows), per_request):
        request_id = uuid.uuid4().hex
        answer = http(
            "POST",
            f"{server.url}/v1/models/{model}:predict",
            {"instances": rows[start : start + per_request]},
            headers={**HEADERS, "X-Request-Id": request_id},
        )
        assert answer.status == 200, answer.body
        ids.append(request_id)
    return ids


def _drift(server: Server, model: str, rows: int, timeout: float = 10.0) -> dict[str, Any]:
    """The model's entry once the server's window holds ``rows`` (workers publish once a
    second)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = http("GET", server.url + "/monitoring/drift", headers=HEADERS)
        assert answer.status == 200, answer.body
        (entry,) = [v for v in answer.json()["versions"] if v["model"] == model]
        if entry["window_rows"] >= rows or time.monotonic() > deadline:
            return entry
        time.sleep(0.2)


def _metric(server: Server, name: str, wanted: float | None = None, **labels: str) -> float:
    """A series' value in /metrics; with ``wanted``, once it is that (to 0.1 %): the worker
    answering may see another's rows up to 1.25 s later (counted every 0.25 s, published
    every second)."""
    deadline = time.monotonic() + 10
    while True:
        value = None
        for line in server.get("/metrics").body.decode().splitlines():
            match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
            if match and dict(re.findall(r'(\w+)="([^"]*)"', match.group(1))) == labels:
                value = float(match.group(2))
        close = value is not None and (wanted is None or abs(value - wanted) <= 1e-3 * abs(wanted))
        if close or time.monotonic() > deadline:
            assert value is not None, f"{name}{labels} not in /metrics"
            return value
        time.sleep(0.2)


def test_the_window_is_the_servers_across_workers(server: Server) -> None:
    rows = [
        {"tenure_months": 12.0, "support_calls": 1.0, "monthly_price": 30.0, "plan": "basic",
         "region": "west"}
    ] * 200  # fmt: skip
    _send(server, "churn", rows, 5)  # 40 connections: both workers answer some
    entry = _drift(server, "churn", 200)
    # Neither worker saw 200 rows alone; whichever answered counted the other's too.
    assert entry["window_rows"] == 200
    assert _metric(server, "tfship_drift_window_rows", 200, model="churn", version="1") == 200
    assert server.log().count('"path":"/v1/models/churn:predict"') == 40
    pids = set(re.findall(r'"pid":(\d+),[^\n]*"path":"/v1/models/churn:predict"', server.log()))
    assert len(pids) == 2, "both workers should have answered some requests"


def test_an_unseen_category_is_counted(server: Server) -> None:
    row = {"tenure_months": 30.0, "support_calls": 2.0, "monthly_price": 50.0, "region": "west"}
    rows = [{**row, "plan": "enterprise" if i % 4 == 0 else "basic"} for i in range(400)]
    _send(server, "churn", rows, 40)
    entry = _drift(server, "churn", 400 + 200)
    (plan,) = entry["inputs"]["plan"]["features"]
    assert plan["unseen_share"] == pytest.approx(100 / 600, abs=1e-5)  # earlier 200: none
    assert plan["score"] > THRESHOLD
    assert _metric(
        server, "tfship_feature_drift_score", plan["score"], model="churn", version="1",
        input="plan", feature="value",
    ) == pytest.approx(plan["score"], rel=1e-3)  # fmt: skip


def test_shifted_digits_raise_the_scores_and_the_window_forgets(
    server: Server, held_out: tuple[np.ndarray, np.ndarray]
) -> None:
    pixels, _ = held_out
    normal = np.concatenate([pixels, pixels])[: WINDOW + 80]  # more than a window

    def scores(shifted: bool) -> tuple[float, float]:
        """Once the server's window shows the traffic just sent (every worker counts every
        0.25 s and publishes every second, later on a loaded machine): polled, not slept."""
        deadline = time.monotonic() + 30
        while True:
            entry = _drift(server, "digits", WINDOW)
            found = entry["inputs"]["pixels"]["score"], entry["predictions"]
            if (found[0] > THRESHOLD) == shifted or time.monotonic() > deadline:
                assert entry["window_rows"] >= WINDOW
                time.sleep(1.5)  # the last blocks of the slower worker, for the figures
                entry = _drift(server, "digits", WINDOW)
                return entry["inputs"]["pixels"]["score"], entry["predictions"]
            time.sleep(0.2)

    _send(server, "digits", normal.tolist(), 90)
    calm, calm_predictions = scores(shifted=False)
    assert calm < THRESHOLD and calm_predictions < THRESHOLD
    exported = _metric(
        server, "tfship_input_drift_score", calm, model="digits", version="1", input="pixels"
    )
    assert exported == pytest.approx(calm, rel=1e-3, abs=1e-6)

    _send(server, "digits", (16 - normal).tolist(), 90)
    inverted, inverted_predictions = scores(shifted=True)
    assert inverted > THRESHOLD and inverted_predictions > THRESHOLD
    assert _metric(
        server, "tfship_prediction_drift_score", inverted_predictions, model="digits", version="1"
    ) == pytest.approx(inverted_predictions, rel=1e-3)

    _send(server, "digits", (normal * 0.5).tolist(), 90)
    scaled, _ = scores(shifted=True)
    assert scaled > THRESHOLD

    _send(server, "digits", normal.tolist(), 90)  # normal traffic again: a window's worth
    again, again_predictions = scores(shifted=False)
    assert again < THRESHOLD and again_predictions < THRESHOLD
    print(
        f"digits PSI, window {WINDOW}: held-out {calm:.4f} (predictions {calm_predictions:.4f}); "
        f"inverted {inverted:.3f} ({inverted_predictions:.3f}); scaled x0.5 {scaled:.3f}; "
        f"held-out again {again:.4f}"
    )


def test_the_drift_table_names_every_feature(server: Server) -> None:
    result = run_tfship("models", "--drift", server.url, "--api-key", KEY)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["MODEL", "VERSION", "WINDOW", "INPUT", "FEATURE", "PSI", "SHIFT"]
    churn = [line.split() for line in lines if line.startswith("churn ")]
    assert {row[3] for row in churn} >= {"(predictions)", "plan", "region", "tenure_months"}
    assert any("unseen" in line for line in lines if line.startswith("churn ") and " plan " in line)
    refused = run_tfship("models", "--drift", server.url)  # no key
    assert refused.returncode == 1 and "401" in refused.stderr


def _captured(capture_dir: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(capture_dir.glob("capture-*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def test_captured_requests_rotate_and_train_a_model(
    server: Server,
    held_out: tuple[np.ndarray, np.ndarray],
    capture_dir: Path,
    tmp_path: Path,
) -> None:
    pixels, labels = held_out
    ids = _send(server, "digits", pixels.tolist(), 30)  # 18 requests of 30 rows
    sent = {
        request_id: (pixels[i * 30 : (i + 1) * 30], labels[i * 30 : (i + 1) * 30])
        for i, request_id in enumerate(ids)
    }
    # The writer threads have written a record for every predict the server answered.
    answered = sum(
        float(line.rsplit(" ", 1)[1])
        for line in server.get("/metrics").body.decode().splitlines()
        if line.startswith("tfship_requests_total{") and 'api="predict"' in line
        and 'status="200"' in line
    )  # fmt: skip
    _metric(server, "tfship_captured_requests_total", answered, result="written")
    files = sorted(capture_dir.glob("capture-*.jsonl"))
    written = _metric(server, "tfship_captured_requests_total", result="written")
    records = _captured(capture_dir)
    # Rotated at the cap, the oldest deleted: the folder holds what the cap allows.
    assert all(p.stat().st_size < CAPTURE_MAX_BYTES + 40_000 for p in files)
    assert len(files) <= CAPTURE_FILES + 2  # closed ones kept + one open per worker
    assert written > len(records), "older files were deleted at the cap"
    text = "\n".join(p.read_text() for p in files)
    assert KEY not in text and "drift-tester" not in text  # no key, no client name
    ours = [r for r in records if r["request_id"] in sent]
    assert len(ours) >= 6
    for record in ours:
        rows, _ = sent[record["request_id"]]
        assert record["model"] == "digits" and record["version"] == 1
        np.testing.assert_array_equal(np.asarray(record["inputs"]["pixels"]), rows)
        assert np.asarray(record["outputs"]["probabilities"]).shape == (30, 10)
        assert record["time"].endswith("Z")

    # The captured rows, labelled by request id and row, become the next training set.
    labels_csv = tmp_path / "labels.csv"
    lines = ["request_id,row,digit"] + [
        f"{r['request_id']},{row},{label}"
        for r in ours
        for row, label in enumerate(sent[r["request_id"]][1])
    ]
    labels_csv.write_text("\n".join(lines) + "\n")
    config = tmp_path / "retrain.yaml"
    config.write_text(
        f"name: digits\ntask: classification\nseed: 1\n"
        f"data: {{source: capture, path: {capture_dir}, labels: {labels_csv}, label: digit}}\n"
        "model: {architecture: mlp, dense_units: [32]}\n"
        "fit: {epochs: 30, batch_size: 32}\n"
        "gate: {threshold: 0.5}\n"
    )
    repo = tmp_path / "models"
    result = run_training(repo, config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    metadata = json.loads((repo / "digits" / "1" / "metadata.json").read_text())
    assert metadata["data"]["rows"]["train"] + metadata["data"]["rows"]["val"] + metadata["data"][
        "rows"
    ]["test"] == 30 * len(ours)
    assert "captured requests of digits" in metadata["data"]["description"]
    assert metadata["inputs"][0]["name"] == "pixels"
    print(
        f"capture: {int(written)} records written, {len(files)} files kept "
        f"({len(records)} records, {len(ours)} of this test's); retrained on "
        f"{30 * len(ours)} rows: test accuracy "
        f"{metadata['metrics']['onnx']['accuracy']:.3f}"
    )


def test_a_capture_source_refuses_labels_it_cannot_match(capture_dir: Path, tmp_path: Path) -> None:
    labels_csv = tmp_path / "labels.csv"
    labels_csv.write_text("request_id,digit\nno-such-request,3\n")
    config = tmp_path / "bad.yaml"
    config.write_text(
        f"name: digits\ntask: classification\n"
        f"data: {{source: capture, path: {capture_dir}, labels: {labels_csv}, label: digit}}\n"
    )
    result = run_training(tmp_path / "models", config=config)
    assert result.returncode != 0
    assert "not in the capture of model 'digits': no-such-request" in result.stderr
    assert not (tmp_path / "models" / "digits").exists()
