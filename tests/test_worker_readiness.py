"""Readiness speaks for every worker: in process, with real files and real processes.

The end-to-end case (a worker frozen before it loads) is in test_faults.py.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from onnx_models import publish_linear_regression

from service.dataplane.plane import DataPlane
from service.models.registry import Registry
from service.models.worker_readiness import WorkerBoard, ready_file
from service.settings import ServiceSettings


def _plane(tmp_path: Path, expected: int) -> tuple[DataPlane, WorkerBoard]:
    repo = tmp_path / "repo"
    publish_linear_regression(repo)
    settings = ServiceSettings(model_dir=repo, poll_seconds=0, workers=expected)
    board_dir = tmp_path / "workers"
    board_dir.mkdir()
    board = WorkerBoard(board_dir, expected)
    registry = Registry(settings)
    plane = DataPlane(registry, settings, keys=None, board=board)
    registry.poll()
    return plane, board


def test_ready_counts_live_workers_that_published(tmp_path: Path) -> None:
    plane, board = _plane(tmp_path, expected=2)
    # This worker's models are loaded, and it said so on the board.
    assert ready_file(board.folder, os.getpid()).exists()
    ready, report = plane.ready()
    assert not ready and report["ready"] is False
    assert report["workers"] == {"ready": 1, "expected": 2}
    assert report["error"].startswith("1 of 2 workers ready")
    assert plane.ready(this_worker=True)[0]  # this worker alone is ready

    (board.folder / "not-a-worker").write_text("")  # other files are ignored
    other = subprocess.Popen(["sleep", "60"])
    try:
        ready_file(board.folder, other.pid).touch()
        ready, report = plane.ready()
        assert ready and report["workers"] == {"ready": 2, "expected": 2}
        assert "error" not in report
    finally:
        other.kill()
        other.wait(timeout=10)
    # A worker that died without removing its file is not counted.
    ready, report = plane.ready()
    assert not ready and report["workers"] == {"ready": 1, "expected": 2}


def test_a_worker_that_is_not_ready_withdraws(tmp_path: Path) -> None:
    plane, board = _plane(tmp_path, expected=1)
    assert plane.ready()[0]
    own = ready_file(board.folder, os.getpid())
    assert own.exists()
    # The repository goes away: this worker keeps serving, but is no longer ready.
    (tmp_path / "repo").rename(tmp_path / "moved")
    plane.registry.poll()
    ready, report = plane.ready()
    assert not ready and not own.exists()
    assert report["workers"] == {"ready": 0, "expected": 1}
