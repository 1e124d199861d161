"""The gunicorn worker class: gunicorn's sync worker, plus a drain on graceful stop.

On SIGTERM gunicorn's sync worker finishes the request in hand and exits. Connections the
kernel has already accepted into the listen backlog, which no worker has taken yet, are then
reset when the last process closes the socket: a client whose request was accepted sees it
fail. This worker takes and answers those before it exits. What still arrives after the
backlog is empty and before the socket closes meets the inherent race of any stop; in
Kubernetes the endpoint is removed first, so nothing should (see k8s/).
"""

from __future__ import annotations

import time

from gunicorn.workers.sync import SyncWorker

# A bound on the drain, so clients that keep connecting cannot hold the stop open; well under
# gunicorn's graceful_timeout, after which the master kills the worker.
_DRAIN_SECONDS = 10.0


class DrainingSyncWorker(SyncWorker):
    def run(self) -> None:
        super().run()
        self._drain()

    def _drain(self) -> None:
        drained = 0
        deadline = time.monotonic() + _DRAIN_SECONDS
        for listener in self.sockets:
            listener.setblocking(False)
            while time.monotonic() < deadline:
                try:
                    client, address = listener.accept()
                except OSError:  # BlockingIOError: the backlog is empty
                    break
                client.setblocking(True)
                self.handle(listener, client, address)
                drained += 1
        if drained:
            self.log.info("drained %d queued connections before exiting", drained)
