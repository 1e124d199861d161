"""Request timeouts for model compute: a watchdog that tells onnxruntime to stop.

ONNX Runtime checks ``RunOptions.terminate`` between graph nodes. One watchdog thread per
worker wakes every 50 ms and sets it on calls past their deadline; the call then fails, and
the request gets a 504 instead of holding its worker. Registering a call is a dict insert
under a lock, so the hot path pays no thread per request. TensorFlow has no such switch:
for the SavedModel runtime gunicorn's worker timeout is the backstop (a worker silent that
long is replaced), so no worker stays hung either way.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_INTERVAL_SECONDS = 0.05


class Watchdog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[int, tuple[float, Any]] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    @contextmanager
    def guard(self, seconds: float, run_options: Any) -> Iterator[None]:
        """Set ``run_options.terminate`` if the block is still running after ``seconds``."""
        key = next(self._ids)
        with self._lock:
            self._calls[key] = (time.monotonic() + seconds, run_options)
            if self._thread is None:  # started lazily: after the fork, in the worker
                self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                del self._calls[key]

    def _run(self) -> None:
        while True:
            time.sleep(_INTERVAL_SECONDS)
            now = time.monotonic()
            with self._lock:
                for deadline, options in self._calls.values():
                    if now >= deadline:
                        options.terminate = True


WATCHDOG = Watchdog()
