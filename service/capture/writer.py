"""Captured requests: a sampled share of inference calls, as JSON lines in a folder.

One line per request: ``time`` (UTC, ISO 8601), ``request_id``, ``model``, ``version``,
``inputs`` and ``outputs`` (name -> nested lists; strings as text, or ``{"b64": ...}`` when
they are not UTF-8). API keys and client names are never written: the call's credentials
do not reach this module.

Never blocking a request: the request thread copies the arrays and puts them on a bounded
queue (``QUEUE_ITEMS``); a full queue drops the record and counts it
(``tfship_captured_requests_total{result="dropped"}``). One thread per worker encodes and
writes. Each worker writes its own file, ``capture-<UTC time>-<pid>.jsonl``, closed and
replaced at ``capture_max_bytes``; beyond ``capture_files`` closed files in the folder the
oldest are deleted, so the folder holds at most ``(capture_files + workers) x
capture_max_bytes``. A worker prunes right after it opens a file, the only time the folder
gains one: another worker's newest file may be open, so it is never deleted, and only its
owner's next opening lets it go once closed (pruning when a file was closed instead left
one such file per worker over the bound when the last thing a worker did was open one).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import queue
import random
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson

from service.metrics import CAPTURED
from tfship.processes import pid_alive

log = logging.getLogger("tfship.capture")

QUEUE_ITEMS = 1000
PREFIX = "capture-"
SUFFIX = ".jsonl"


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode("ascii")}
    return value


def encodable(array: np.ndarray) -> Any:
    """A tensor as JSON: nested lists, floats at their dtype's precision (orjson)."""
    if array.dtype == object or array.dtype.kind in "SU":
        flat = [_text(v) for v in array.reshape(-1).tolist()]
        if not array.ndim:
            return flat[0]
        return np.asarray(flat, dtype=object).reshape(array.shape).tolist()
    return array


class CaptureWriter:
    def __init__(self, folder: Path, sample: float, max_bytes: int, keep: int) -> None:
        self.folder = folder
        self.sample = sample
        self.max_bytes = max_bytes
        self.keep = keep
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(QUEUE_ITEMS)
        self._file: BinaryIO | None = None
        self._path: Path | None = None
        self._written = 0
        self._opened: datetime | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    # --- the request path ---

    def offer(
        self,
        model: str,
        version: int,
        request_id: str | None,
        inputs: Mapping[str, Any],
        outputs: Mapping[str, Any],
    ) -> None:
        if self.sample < 1.0 and random.random() >= self.sample:
            return
        record = {
            "time": time.time(),
            "request_id": request_id,
            "model": model,
            "version": version,
            # Copies: a request's arrays may view its body buffer, reused after the answer.
            "inputs": {k: np.array(v, copy=True) for k, v in inputs.items()},
            "outputs": {k: np.array(v, copy=True) for k, v in outputs.items()},
        }
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            CAPTURED.labels("dropped").inc()
            return
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
                self._thread.start()

    # --- the writer thread ---

    def _run(self) -> None:
        while True:
            record = self._queue.get()
            try:
                self.write(record)
                CAPTURED.labels("written").inc()
            except OSError as exc:  # a full or read-only disk: requests go on regardless
                CAPTURED.labels("failed").inc()
                log.warning("capture: cannot write to %s: %s", self.folder, exc)
                self._close()
            finally:
                self._queue.task_done()

    def write(self, record: dict[str, Any]) -> None:
        when = datetime.fromtimestamp(record["time"], UTC)
        line = orjson.dumps(
            {
                "time": when.isoformat(timespec="microseconds").replace("+00:00", "Z"),
                "request_id": record["request_id"],
                "model": record["model"],
                "version": record["version"],
                "inputs": {k: encodable(v) for k, v in record["inputs"].items()},
                "outputs": {k: encodable(v) for k, v in record["outputs"].items()},
            },
            option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE,
        )
        if self._file is None:
            self._open(when)
            self._prune()
        assert self._file is not None
        self._file.write(line)
        self._file.flush()  # a reader (or a crash) sees whole lines
        self._written += len(line)
        if self._written >= self.max_bytes:
            self._close()

    def _open(self, when: datetime) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        # A worker's names sort in the order it opened them, which pruning relies on: with
        # several request threads a record can be older than the last file's first one.
        if self._opened is not None and when <= self._opened:
            when = self._opened + timedelta(microseconds=1)
        self._opened = when
        stamp = when.strftime("%Y%m%dT%H%M%S.%fZ")
        self._path = self.folder / f"{PREFIX}{stamp}-{os.getpid()}{SUFFIX}"
        self._file = self._path.open("ab")
        self._written = 0

    def _close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        self._file = None

    def _prune(self) -> None:
        """Delete the oldest closed files beyond ``keep``, any worker's (names sort by
        time). This worker's open file, and another live worker's newest, which may be the
        one it is writing, are never deleted."""
        newest: dict[int, Path] = {}
        files = sorted(self.folder.glob(f"{PREFIX}*{SUFFIX}"))
        for path in files:
            pid = _pid_of(path)
            if pid is not None:
                newest[pid] = path
        open_now = {path for pid, path in newest.items() if pid != os.getpid() and pid_alive(pid)}
        if self._path is not None:  # the file this worker has just opened
            open_now.add(self._path)
        closed = [f for f in files if f not in open_now]
        for old in closed[: max(0, len(closed) - self.keep)]:
            old.unlink(missing_ok=True)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every queued record is written (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)


def _pid_of(path: Path) -> int | None:
    tail = path.name.removesuffix(SUFFIX).rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None
