"""The capture writer in process: JSON lines as documented, rotation at the size cap, the
oldest closed files pruned (never a live worker's open one), and a stalled writer costing
requests nothing but the dropped records, counted."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from multiprocessing import Queue
from pathlib import Path

import numpy as np
import pytest

from service.capture import writer as capture
from service.capture.writer import CaptureWriter
from service.metrics import CAPTURED


def _offer(writer: CaptureWriter, request_id: str, rows: int = 4) -> None:
    writer.offer(
        "digits",
        3,
        request_id,
        {
            "pixels": np.arange(rows * 4, dtype=np.float32).reshape(rows, 4) / 3,
            "plan": np.array(["basic", b"\xff\xfe"] * (rows // 2), dtype=object),
        },
        {"probabilities": np.full((rows, 2), 0.5, dtype=np.float32)},
    )


def test_records_are_json_lines_with_tensors_as_sent(tmp_path: Path) -> None:
    writer = CaptureWriter(tmp_path, 1.0, 1 << 20, 5)
    _offer(writer, "req-1")
    writer.flush()
    (path,) = tmp_path.glob("capture-*.jsonl")
    assert path.name.endswith(f"-{os.getpid()}.jsonl")
    (record,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert record["request_id"] == "req-1" and record["model"] == "digits"
    assert record["version"] == 3 and record["time"].endswith("Z")
    pixels = np.asarray(record["inputs"]["pixels"], dtype=np.float32)
    np.testing.assert_array_equal(pixels, np.arange(16, dtype=np.float32).reshape(4, 4) / 3)
    # float32 at float32's precision, not its float64 widening
    assert "0.33333334" in path.read_text() and "0.3333333432674408" not in path.read_text()
    assert record["inputs"]["plan"][:2] == ["basic", {"b64": "//4="}]
    assert record["outputs"]["probabilities"] == [[0.5, 0.5]] * 4


def test_files_rotate_at_the_cap_and_the_oldest_are_pruned(tmp_path: Path) -> None:
    writer = CaptureWriter(tmp_path, 1.0, 4096, 3)
    for i in range(60):
        _offer(writer, f"req-{i}")
    writer.flush()
    files = sorted(tmp_path.glob("capture-*.jsonl"))
    assert len(files) <= 3 + 1  # closed ones kept, plus the one being written
    lines = [json.loads(line) for p in files for line in p.read_text().splitlines()]
    assert lines[-1]["request_id"] == "req-59"  # the newest kept, in order
    assert len(lines) < 60  # the oldest went
    assert all(p.stat().st_size < 4096 + 1024 for p in files)  # one record past the cap
    ids = [int(r["request_id"].split("-")[1]) for r in lines]
    assert ids == sorted(ids) and ids == list(range(ids[0], 60))


def test_a_live_workers_open_file_is_never_pruned(tmp_path: Path) -> None:
    # Another live process's only file (its open one) is older than everything written here.
    other = tmp_path / f"capture-20000101T000000.000000Z-{os.getppid()}.jsonl"
    other.write_text('{"request_id": "other"}\n')
    dead = tmp_path / "capture-20000101T000000.000001Z-999999999.jsonl"
    dead.write_text('{"request_id": "dead"}\n')
    writer = CaptureWriter(tmp_path, 1.0, 4096, 2)
    for i in range(40):
        _offer(writer, f"req-{i}")
    writer.flush()
    assert other.exists()  # its worker may still be writing it
    assert not dead.exists()  # a dead worker's file is old data like any other


def test_a_stalled_writer_drops_records_without_blocking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = CaptureWriter(tmp_path, 1.0, 1 << 20, 5)
    monkeypatch.setattr(writer, "_start", lambda: None)  # the writer thread never runs
    dropped = CAPTURED.labels("dropped")._value.get()
    for i in range(capture.QUEUE_ITEMS + 25):
        _offer(writer, f"req-{i}", rows=2)
    assert CAPTURED.labels("dropped")._value.get() - dropped == 25
    assert not list(tmp_path.glob("*.jsonl"))


def test_sampling_keeps_about_the_asked_share(tmp_path: Path) -> None:
    writer = CaptureWriter(tmp_path, 0.1, 1 << 20, 5)
    for i in range(2000):
        _offer(writer, f"req-{i}", rows=2)
    writer.flush()
    kept = sum(len(p.read_text().splitlines()) for p in tmp_path.glob("*.jsonl"))
    assert 120 <= kept <= 280  # 200 expected; the bounds are 7 standard deviations wide


def _record(rows: int) -> dict[str, object]:
    return {
        "time": time.time(),
        "request_id": f"rows-{rows}",
        "model": "digits",
        "version": 1,
        "inputs": {"pixels": np.zeros((rows, 8), dtype=np.float32)},
        "outputs": {"probabilities": np.zeros((rows, 2), dtype=np.float32)},
    }


def _capture_worker(folder: str, steps: Queue, done: Queue) -> None:
    """A worker process of the test below: writes a record of the rows it is given."""
    writer = CaptureWriter(Path(folder), 1.0, _CAP, 1)
    while (rows := steps.get()) is not None:
        writer.write(_record(rows))
        done.put(rows)


_CAP = 4096
_SMALL, _BIG = 2, 200  # a record under the cap, and one that fills a file by itself


def test_two_workers_stay_within_the_bound_in_the_order_that_overflowed(tmp_path: Path) -> None:
    # Two worker processes driven step by step into the order that once left one file too
    # many: A opens a file, B fills one (its prune keeps A's as open), A fills its file
    # (its prune keeps B's newest as open: B's file was closed), then B and A each open a
    # new file. Nothing may leave more than keep closed files plus one per worker.
    context = multiprocessing.get_context("spawn")
    workers = {}
    for name in "AB":
        steps, done = context.Queue(), context.Queue()
        process = context.Process(target=_capture_worker, args=(str(tmp_path), steps, done))
        process.start()
        workers[name] = (process, steps, done)
    try:
        for name, rows in (("A", _SMALL), ("B", _BIG), ("A", _BIG), ("B", _SMALL), ("A", _SMALL)):
            _, steps, done = workers[name]
            steps.put(rows)
            assert done.get(timeout=60) == rows
            files = sorted(tmp_path.glob("capture-*.jsonl"))
            assert len(files) <= 1 + 2, [p.name for p in files]
    finally:
        for process, steps, _ in workers.values():
            steps.put(None)
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    # Both workers' open files are among those left.
    pids = {capture._pid_of(p) for p in tmp_path.glob("capture-*.jsonl")}
    assert pids == {workers["A"][0].pid, workers["B"][0].pid}
