"""Hot reload: versions published while clients send requests, policies and labels."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from conftest import Server, http

from service.models.model_config import VersionPolicy
from tfship import repository

ROW = np.zeros((1, 8, 8, 1), dtype=np.float32).reshape(-1).tolist()
INFER = {"inputs": [{"name": "pixels", "shape": [1, 8, 8, 1], "datatype": "FP32", "data": ROW}]}


def publish_copy(
    model_root: Path, source: int, change: Callable[[Path], None] | None = None
) -> int:
    """Publish a copy of a version through the real atomic publish path."""
    staging = repository.new_temp_dir(model_root)
    shutil.copytree(model_root / str(source), staging, dirs_exist_ok=True)
    if change:
        change(staging)

    def finalize(folder: Path, version: int) -> None:
        metadata = repository.read_metadata(folder)
        repository.write_metadata(folder, replace(metadata, version=version))

    return repository.publish(staging, model_root, finalize).version


class ClientLoop:
    """One client sending V2 infers in a loop, bounded in count and time."""

    def __init__(self, server: Server, max_requests: int = 50000, max_seconds: float = 120):
        self.server, self.max_requests, self.max_seconds = server, max_requests, max_seconds
        self.versions: list[str] = []
        self.failures: list[tuple[int, bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while (
            not self._stop.is_set()
            and len(self.versions) < self.max_requests
            and time.monotonic() < deadline
        ):
            answer = http("POST", self.server.url + "/v2/models/digits/infer", INFER)
            if answer.status != 200:
                self.failures.append((answer.status, answer.body))
            else:
                self.versions.append(answer.json()["model_version"])

    def __enter__(self) -> ClientLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def wait_for(self, version: str, streak: int = 20, timeout: float = 60) -> None:
        """Until the last ``streak`` answers all came from ``version``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            recent = self.versions[-streak:]
            if len(recent) == streak and set(recent) == {version}:
                return
            time.sleep(0.05)
        raise AssertionError(
            f"answers never settled on version {version}: {self.versions[-streak:]}"
        )


def wait_status(server: Server, want: list[tuple[str, str, str]], timeout: float = 60) -> None:
    """Until every worker reports these (version, state, error_code) entries."""
    deadline = time.monotonic() + timeout
    seen: list[tuple[str, str, str]] = []
    settled = 0
    while time.monotonic() < deadline:
        body = server.get("/v1/models/digits").json()
        seen = [
            (s["version"], s["state"], s["status"]["error_code"])
            for s in body["model_version_status"]
        ]
        settled = settled + 1 if seen == want else 0
        if settled >= 10:  # ten answers in a row, so both workers have agreed
            return
        time.sleep(0.05)
    raise AssertionError(f"status never became {want}; last seen {seen}")


def test_versions_go_live_and_broken_ones_never_serve(repo_copy: Path, start_server: Any) -> None:
    root = repo_copy / "digits"
    server = start_server(repo_copy, "--workers", "2", "--poll-seconds", "0.2")
    server.wait_ready()
    with ClientLoop(server) as client:
        client.wait_for("1")
        assert publish_copy(root, 1) == 2
        client.wait_for("2")
        wait_status(server, [("2", "AVAILABLE", "OK"), ("1", "END", "OK")])

        def corrupt(folder: Path) -> None:
            onnx = folder / "model.onnx"
            data = bytearray(onnx.read_bytes())
            data[100] ^= 0xFF
            onnx.write_bytes(bytes(data))

        def mismatched(folder: Path) -> None:
            metadata = json.loads((folder / "metadata.json").read_text())
            metadata["outputs"][0]["shape"] = [-1, 9]  # the model answers 10 columns
            (folder / "metadata.json").write_text(json.dumps(metadata))

        assert publish_copy(root, 2, corrupt) == 3
        wait_status(
            server, [("3", "END", "DATA_LOSS"), ("2", "AVAILABLE", "OK"), ("1", "END", "OK")]
        )
        assert publish_copy(root, 2, mismatched) == 4
        wait_status(
            server,
            [
                ("4", "END", "UNKNOWN"),
                ("3", "END", "DATA_LOSS"),
                ("2", "AVAILABLE", "OK"),
                ("1", "END", "OK"),
            ],
        )
        client.wait_for("2")
    assert client.failures == [], client.failures[:3]
    assert client.versions[0] == "1" and client.versions[-1] == "2"
    assert set(client.versions) == {"1", "2"}, "broken versions 3 and 4 must never answer"
    # Every worker switched: once a worker answers 2 it never goes back to 1.
    first_two = client.versions.index("2")
    assert len(client.versions) > first_two + 20

    status = server.get("/v1/models/digits/versions/4").json()["model_version_status"][0]
    assert (
        "warm-up (assets.extra/tf_serving_warmup_requests record 0): output 'probabilities' "
        "has shape [1, 10], the signature declares [-1, 9]" in status["status"]["error_message"]
    )
    assert server.get("/readyz").status == 200, "version 2 still serves: ready"
    metrics = server.get("/metrics").body.decode()
    # Both workers agree: two failed versions, one available; each worker counted its loads.
    assert 'tfship_model_versions{model="digits",state="FAILED"} 2.0' in metrics
    assert 'tfship_model_versions{model="digits",state="AVAILABLE"} 1.0' in metrics
    # Versions 3 and 4 failed in both workers, and are tried again after a backoff.
    failed_loads = re.search(
        r'tfship_model_loads_total\{model="digits",result="failed"\} (\S+)', metrics
    )
    assert failed_loads and float(failed_loads.group(1)) >= 4.0
    log = server.log()
    assert (
        "model digits version 2 AVAILABLE" in log
        and "warmed up with 2 requests from assets.extra" in log
    )
    assert server.post("/v1/models/digits/versions/3:predict", {"instances": [ROW]}).status == 503
    assert server.post("/v1/models/digits/versions/1:predict", {"instances": [ROW]}).status == 404


def test_a_version_copied_in_file_by_file_is_served_once_whole(
    repo_copy: Path, start_server: Any
) -> None:
    # As `cp -r` publishes: metadata.json first, the model's files over the next 3 s. The
    # workers' first loads fail (files missing), and their retries load it once whole.
    root = repo_copy / "digits"
    server = start_server(repo_copy, "--workers", "2", "--poll-seconds", "0.2")
    server.wait_ready()
    source, target = root / "1", root / "2"
    target.mkdir()
    metadata = repository.read_metadata(source)
    repository.write_metadata(target, replace(metadata, version=2))
    files = [f for f in sorted(source.rglob("*")) if f.is_file() and f.name != "metadata.json"]
    with ClientLoop(server) as client:
        for file in files:
            time.sleep(3.0 / len(files))
            (target / file.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, target / file.relative_to(source))
        client.wait_for("2", streak=40)
        wait_status(server, [("2", "AVAILABLE", "OK"), ("1", "END", "OK")])
    assert "load 1 failed; trying again in 1 s" in server.log()
    assert client.failures == [], client.failures[:3]
    # The workers loaded version 2 at different moments, and switched to it together: no
    # client saw 2 and then 1 again.
    first_two = client.versions.index("2")
    assert set(client.versions[first_two:]) == {"2"}, client.versions[first_two - 5 :][:60]
    ready = server.get("/readyz").json()
    assert ready["models"]["digits"]["serving"] == 2 and ready["workers"]["ready"] == 2


def test_model_config_file_policy_and_labels(
    repo_copy: Path, tmp_path: Path, start_server: Any
) -> None:
    root = repo_copy / "digits"
    publish_copy(root, 1)
    publish_copy(root, 1)
    config = tmp_path / "models.yaml"
    config.write_text(
        "models:\n"
        "  - name: digits\n"
        f"    base_path: {root}\n"
        "    version_policy: {specific: [1, 2]}\n"
        "    labels: {stable: 1, canary: 2}\n"
    )
    empty = tmp_path / "unused"
    empty.mkdir()
    server = start_server(
        empty, "--workers", "1", "--model-config", str(config), "--poll-seconds", "0.2"
    )
    server.wait_ready()
    statuses = server.get("/v1/models/digits").json()["model_version_status"]
    assert [(s["version"], s["state"]) for s in statuses] == [
        ("2", "AVAILABLE"),
        ("1", "AVAILABLE"),
    ]
    assert (
        server.get("/v1/models/digits/labels/stable").json()["model_version_status"][0]["version"]
        == "1"
    )
    canary = server.get("/v1/models/digits/labels/canary/metadata").json()
    assert canary["model_spec"]["version"] == "2"
    for path, _version in (
        ("/v1/models/digits/labels/stable:predict", "1"),
        ("/v1/models/digits:predict", "2"),
    ):
        answer = server.post(path, {"instances": [np.zeros((8, 8, 1)).tolist()]})
        assert answer.status == 200, (path, answer.body)
    assert server.post("/v2/models/digits/infer", INFER).json()["model_version"] == "2"
    assert server.get("/v2/models/digits").json()["versions"] == ["2", "1"]
    missing = server.get("/v1/models/digits/labels/beta")
    assert missing.status == 404
    assert missing.json()["error"] == (
        "label 'beta' is not defined for model 'digits' (labels: canary, stable)"
    )
    assert server.get("/v1/models/digits/versions/3").status == 404
    assert server.get("/readyz").json()["models"]["digits"]["version_policy"] == "specific 1,2"

    # The model config file is re-read on change: a new policy and labels, no restart.
    config.write_text(
        "models:\n"
        "  - name: digits\n"
        f"    base_path: {root}\n"
        "    version_policy: {latest: 1}\n"
        "    labels: {stable: 3}\n"
    )
    wait_status(server, [("3", "AVAILABLE", "OK"), ("2", "END", "OK"), ("1", "END", "OK")])
    stable = server.get("/v1/models/digits/labels/stable").json()["model_version_status"]
    assert [s["version"] for s in stable] == ["3"]
    assert server.get("/v1/models/digits/labels/canary").status == 404
    # A bad edit is reported and changes nothing: the previous config keeps serving.
    config.write_text("models:\n  - name: digits\n    version_policy: {latest: 0}\n")
    deadline = time.monotonic() + 30
    while "model_config_error" not in server.get("/readyz").json():
        assert time.monotonic() < deadline, "the bad model config was never reported"
        time.sleep(0.1)
    ready = server.get("/readyz")
    assert ready.status == 200
    assert (
        "models[0].version_policy.latest: must be at least 1"
        in (ready.json()["model_config_error"])
    )
    answer = server.post(
        "/v1/models/digits/labels/stable:predict", {"instances": [np.zeros((8, 8, 1)).tolist()]}
    )
    assert answer.status == 200, answer.body


def test_version_policies_select_from_what_is_published() -> None:
    published = [1, 2, 5, 9]
    assert VersionPolicy().select(published) == [9]
    assert VersionPolicy(latest=2).select(published) == [5, 9]
    assert VersionPolicy(latest=10).select(published) == published
    assert VersionPolicy(all=True).select(published) == published
    assert VersionPolicy(specific=[2, 3, 9]).select(published) == [2, 9]
    assert VersionPolicy().select([]) == []


def test_unloading_waits_for_requests_in_flight(repo_copy: Path) -> None:
    """A version leaving service stays loaded until the requests holding it are done."""
    from service.app import create_app
    from service.models.versions import AVAILABLE, END, UNLOADING
    from service.settings import ServiceSettings

    settings = ServiceSettings(model_dir=repo_copy, poll_seconds=0, unload_drain_seconds=60)
    registry = create_app(settings, load_models=False).extensions["tfship.registry"]
    registry.poll()
    pixels = {"pixels": np.zeros((1, 8, 8, 1), np.float32)}
    with registry.serving("digits") as held:  # a slow request, still running on version 1
        assert held.version == 1
        publish_copy(repo_copy / "digits", 1)
        poll = threading.Thread(target=registry.poll, daemon=True)
        poll.start()
        deadline = time.monotonic() + 60
        while held.state != UNLOADING and time.monotonic() < deadline:
            time.sleep(0.01)
        assert held.state == UNLOADING
        # New requests already go to version 2; the held one still runs on version 1.
        with registry.serving("digits") as newer:
            assert newer.version == 2 and newer.state == AVAILABLE
        time.sleep(0.3)
        assert poll.is_alive(), "the unload must wait for the request in flight"
        assert held.predict(pixels)["probabilities"].shape == (1, 10)
    poll.join(10)
    assert not poll.is_alive()
    assert held.state == END and held.runtime is None
