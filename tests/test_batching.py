"""Dynamic batching: real servers with batching on (REST and gRPC), and the batcher's rules."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import Server, TrainedRepo, http

from service.errors import Overloaded
from service.models.batching import Batcher, padded_size
from service.models.model_config import BatchingConfig, load_model_config
from service.settings import ServiceSettings, SettingsError


def _model_config(folder: Path, batching: str) -> Path:
    path = folder / "models.yaml"
    path.write_text(f"models:\n  - name: digits\n    batching: {batching}\n")
    return path


def _metric(server: Server, name: str, default: float | None = None) -> float:
    for line in server.get("/metrics").body.decode().splitlines():
        if line.startswith(name + "{") and 'model="digits"' in line:
            return float(line.rsplit(" ", 1)[1])
    if default is not None:
        return default
    raise AssertionError(f"{name} not in /metrics")


@pytest.fixture(scope="module")
def batched_server(
    trained_repo: TrainedRepo, start_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Server:
    # A long timeout makes a wrongly applied wait obvious (the idle test), and padding to
    # allowed sizes is exercised by every batch of 3, 5, 6 or 7 rows.
    config = _model_config(
        tmp_path_factory.mktemp("batched"),
        "{max_batch_size: 8, batch_timeout_micros: 500000, max_enqueued_batches: 64, "
        "allowed_batch_sizes: [2, 4, 8]}",
    )
    server = start_server(
        trained_repo.path, "--workers", "1", "--threads", "8", "--model-config", str(config)
    )
    server.wait_ready()
    return server


def test_concurrent_requests_are_batched_and_each_gets_its_own_rows(
    batched_server: Server, trained_repo: TrainedRepo, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, _ = digits
    expected = trained_repo.onnx_probabilities(x[:480])
    calls_before = _metric(batched_server, "tfship_batch_size_count", default=0.0)
    (stats_before,) = batched_server.get("/v2/models/digits/stats").json()["model_stats"]
    # 8 clients x 20 requests of 1 to 3 rows each, every request different rows.
    plan = [(start, 1 + start % 3) for start in range(0, 480, 3)]

    def send(item: tuple[int, int]) -> tuple[int, np.ndarray]:
        start, rows = item
        answer = batched_server.post(
            "/v1/models/digits:predict", {"instances": x[start : start + rows].tolist()}
        )
        assert answer.status == 200, answer.body
        return start, np.asarray(answer.json()["predictions"], dtype=np.float32)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, plan))
    for (start, got), (_, rows) in zip(answers, plan, strict=True):
        np.testing.assert_allclose(got, expected[start : start + rows], rtol=1e-5, atol=1e-6)
    calls = _metric(batched_server, "tfship_batch_size_count") - calls_before
    # Fewer runtime calls than requests: they were batched (8 waiting clients, up to 8 rows).
    assert calls < len(plan) * 0.6, (calls, len(plan))
    assert _metric(batched_server, "tfship_batch_queue_duration_seconds_count") >= len(plan)
    assert _metric(batched_server, "tfship_batch_queued_rows") == 0
    # Triton's statistics of the same: runtime calls (batches) apart from requests, and
    # every request's wait in the queue.
    (stats,) = batched_server.get("/v2/models/digits/stats").json()["model_stats"]
    executions = stats["execution_count"] - stats_before["execution_count"]
    assert executions == calls
    queued = stats["inference_stats"]["queue"]
    assert queued["count"] - stats_before["inference_stats"]["queue"]["count"] == len(plan)
    assert queued["ns"] > stats_before["inference_stats"]["queue"]["ns"]
    ready = batched_server.get("/readyz").json()
    assert ready["models"]["digits"]["batching"] == {
        "max_batch_size": 8,
        "batch_timeout_micros": 500000,
        "max_enqueued_batches": 64,
        "allowed_batch_sizes": [2, 4, 8],
    }


def test_an_idle_batcher_adds_no_latency(
    batched_server: Server, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    """One request at a time never waits for the 0.5 s batch timeout."""
    x, _ = digits
    body = {"instances": x[:1].tolist()}
    batched_server.post("/v1/models/digits:predict", body)  # may end a busy spell
    seconds = []
    for _ in range(10):
        started = time.perf_counter()
        assert batched_server.post("/v1/models/digits:predict", body).status == 200
        seconds.append(time.perf_counter() - started)
    assert max(seconds) < 0.25, seconds


def test_grpc_requests_are_batched_too(
    batched_server: Server, trained_repo: TrainedRepo, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    grpc = pytest.importorskip("grpc")
    tf = pytest.importorskip("tensorflow")
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    x, _ = digits
    expected = trained_repo.onnx_probabilities(x[:64])
    with grpc.insecure_channel(batched_server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

        def send(row: int) -> np.ndarray:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "digits"
            request.inputs["pixels"].CopyFrom(tf.make_tensor_proto(x[row : row + 1]))
            return tf.make_ndarray(stub.Predict(request, timeout=30).outputs["probabilities"])

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(send, range(64)))
    np.testing.assert_allclose(np.concatenate(answers), expected, rtol=1e-5, atol=1e-6)


def test_a_full_queue_answers_503_and_resource_exhausted(
    trained_repo: TrainedRepo,
    start_server: Any,
    tmp_path: Path,
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    grpc = pytest.importorskip("grpc")
    tf = pytest.importorskip("tensorflow")
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    # Room for one 40-row request in the queue: a second one waiting at the same time is
    # refused rather than queued.
    config = _model_config(
        tmp_path, "{max_batch_size: 64, batch_timeout_micros: 0, max_enqueued_batches: 1}"
    )
    server = start_server(
        trained_repo.path,
        "--workers",
        "1",
        "--threads",
        "16",
        "--grpc-threads",
        "8",
        "--model-config",
        str(config),
    )
    server.wait_ready()
    x, _ = digits
    body = {"instances": x[:40].tolist()}
    statuses: Counter[int] = Counter()
    refusals: list[Any] = []
    grpc_codes: Counter[str] = Counter()
    stop = threading.Event()

    def rest_client() -> None:
        for _ in range(60):  # bounded
            if stop.is_set():
                return
            answer = http("POST", server.url + "/v1/models/digits:predict", body)
            statuses[answer.status] += 1
            if answer.status == 503:
                refusals.append(answer)

    def grpc_client(stub: Any) -> None:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "digits"
        request.inputs["pixels"].CopyFrom(tf.make_tensor_proto(x[:40]))
        for _ in range(60):
            if stop.is_set():
                return
            try:
                stub.Predict(request, timeout=30)
                grpc_codes["OK"] += 1
            except grpc.RpcError as error:
                grpc_codes[error.code().name] += 1
                if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    assert "batching queue is full" in error.details()

    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        threads = [threading.Thread(target=rest_client) for _ in range(12)]
        threads += [threading.Thread(target=grpc_client, args=(stub,)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert set(statuses) == {200, 503}, statuses
    assert set(grpc_codes) <= {"OK", "RESOURCE_EXHAUSTED"}, grpc_codes
    assert grpc_codes["RESOURCE_EXHAUSTED"] > 0 and grpc_codes["OK"] > 0, grpc_codes
    refusal = refusals[0]
    assert refusal.headers["Retry-After"] == "1"
    assert "batching queue is full" in refusal.json()["error"]
    assert "max_enqueued_batches 1" in refusal.json()["error"]
    # Nothing is left behind: the next request is served.
    assert server.post("/v1/models/digits:predict", body).status == 200
    assert _metric(server, "tfship_batch_queued_rows") == 0
    assert "only concurrent gRPC calls can share" not in server.log()  # it has threads
    metrics = server.get("/metrics").body.decode()
    assert 'tfship_requests_total{api="predict",model="digits",protocol="tfserving"' in metrics
    assert 'status="503"' in metrics


# --- the batcher's rules, without a server (a numpy function stands in for the model) ---


class _Gate:
    """A runtime that blocks its first call until released, so that requests pile up."""

    def __init__(self, fail_on_negative: bool = False) -> None:
        self.released = threading.Event()
        self.entered = threading.Event()
        self.calls: list[int] = []
        self.fail_on_negative = fail_on_negative

    def __call__(self, inputs: Any, outputs: Any) -> dict[str, np.ndarray]:
        x = inputs["x"]
        self.calls.append(len(x))
        self.entered.set()
        self.released.wait(10)
        if self.fail_on_negative and (x < 0).any():
            raise ValueError("negative input")
        return {"y": x * 2}


def _submit(batcher: Batcher, values: list[float]) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["y"] = batcher.predict({"x": np.asarray(values, dtype=np.float32)})["y"]
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _wait_queued(batcher: Batcher, rows: int) -> None:
    deadline = time.monotonic() + 10
    while batcher._queued_rows < rows:
        assert time.monotonic() < deadline, batcher._queued_rows
        time.sleep(0.005)


def test_batches_are_padded_to_allowed_sizes_and_sliced_back() -> None:
    gate = _Gate()
    batcher = Batcher("unit", BatchingConfig(8, 0, 4, [4, 8]), gate, 1)
    first, first_out = _submit(batcher, [1.0])
    gate.entered.wait(10)
    waiting = [_submit(batcher, [float(10 * i + 1), float(10 * i + 2)]) for i in range(3)]
    _wait_queued(batcher, 6)
    gate.released.set()
    for thread, _ in [(first, first_out), *waiting]:
        thread.join(10)
    batcher.stop()
    # The first request alone, padded to 4; the next three (6 rows) together, padded to 8.
    assert gate.calls == [4, 8]
    np.testing.assert_array_equal(first_out["y"], [2.0])
    for i, (_, outcome) in enumerate(waiting):
        np.testing.assert_array_equal(outcome["y"], [20.0 * i + 2, 20.0 * i + 4])


def test_a_failing_request_does_not_fail_the_rest_of_its_batch() -> None:
    gate = _Gate(fail_on_negative=True)
    batcher = Batcher("unit", BatchingConfig(8, 0, 4, []), gate, 1)
    first, _ = _submit(batcher, [1.0])
    gate.entered.wait(10)
    good = [_submit(batcher, [float(i)]) for i in range(3)]
    bad = _submit(batcher, [-1.0])
    _wait_queued(batcher, 4)
    gate.released.set()
    for thread, _ in [(first, None), *good, bad]:
        thread.join(10)
    batcher.stop()
    assert [o["y"].tolist() for _, o in good] == [[0.0], [2.0], [4.0]]
    assert isinstance(bad[1]["error"], ValueError)
    assert gate.calls == [1, 4, 1, 1, 1, 1]  # the batch of four, then each one alone


def test_a_full_queue_refuses_at_once_and_a_large_request_runs_alone() -> None:
    gate = _Gate()
    batcher = Batcher("unit", BatchingConfig(2, 0, 1, []), gate, 1)
    first, _ = _submit(batcher, [1.0])
    gate.entered.wait(10)
    queued, queued_out = _submit(batcher, [1.0, 2.0])
    _wait_queued(batcher, 2)
    with pytest.raises(Overloaded, match="batching queue is full"):
        batcher.predict({"x": np.ones(1, dtype=np.float32)})
    gate.released.set()
    # More rows than max_batch_size: not queued (it could never fit), run on its own.
    np.testing.assert_array_equal(
        batcher.predict({"x": np.ones(3, dtype=np.float32)})["y"], [2.0, 2.0, 2.0]
    )
    queued.join(10)
    first.join(10)
    batcher.stop()
    np.testing.assert_array_equal(queued_out["y"], [2.0, 4.0])


def test_padded_size() -> None:
    assert padded_size(3, [2, 4, 8]) == 4
    assert padded_size(8, [2, 4, 8]) == 8
    assert padded_size(5, []) == 5


@pytest.mark.parametrize(
    ("batching", "message"),
    [
        ("{max_batch_size: 0}", "max_batch_size: must be 1..65536"),
        ("{batch_timeout_micros: -1}", "batch_timeout_micros: must be 0..1000000"),
        ("{max_enqueued_batches: 0}", "max_enqueued_batches: must be at least 1"),
        (
            "{max_batch_size: 8, allowed_batch_sizes: [4, 2, 8]}",
            "must be positive and increasing",
        ),
        (
            "{max_batch_size: 8, allowed_batch_sizes: [2, 4]}",
            "the last size (4) must equal max_batch_size (8)",
        ),
        ("{max_batch_size: 8, batch_size: 4}", "batch_size: unknown key"),
    ],
)
def test_bad_batching_config_is_refused_by_name(
    tmp_path: Path, batching: str, message: str
) -> None:
    config = _model_config(tmp_path, batching)
    with pytest.raises(SettingsError) as caught:
        load_model_config(config, ServiceSettings(model_dir=tmp_path))
    assert "models[0].batching." in str(caught.value)
    assert message in str(caught.value)


def test_batching_without_threads_is_reported(
    trained_repo: TrainedRepo, start_server: Any, tmp_path: Path
) -> None:
    config = _model_config(tmp_path, "{}")
    server = start_server(trained_repo.path, "--workers", "1", "--model-config", str(config))
    server.wait_ready()
    assert "only concurrent gRPC calls can share a batch" in server.log()


def test_batching_defaults(tmp_path: Path) -> None:
    (spec,) = load_model_config(_model_config(tmp_path, "{}"), ServiceSettings(model_dir=tmp_path))
    assert spec.batching == BatchingConfig(32, 0, 16, [])
