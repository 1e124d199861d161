"""The gunicorn worker classes: gunicorn's sync and gthread workers, plus a drain on stop.

On SIGTERM gunicorn's workers finish the requests in hand and exit. Connections the kernel
has already accepted into the listen backlog, which no worker has taken yet, are then reset
when the last process closes the socket: a client whose request was accepted sees it fail.
These workers take and answer those before they exit. What still arrives after the backlog
is empty and before the socket closes meets the inherent race of any stop; in Kubernetes the
endpoint is removed first, so nothing should (see k8s/).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from gunicorn.workers.base import Worker
from gunicorn.workers.gthread import TConn, ThreadWorker
from gunicorn.workers.sync import SyncWorker

# A bound on the drain, so clients that keep connecting cannot hold the stop open; well under
# gunicorn's graceful_timeout, after which the master kills the worker.
_DRAIN_SECONDS = 10.0


def _drain_backlog(
    worker: Worker, take: Callable[[socket.socket, socket.socket, object], None]
) -> None:
    """Accept every connection queued on the worker's listeners and hand it to ``take``."""
    drained = 0
    deadline = time.monotonic() + _DRAIN_SECONDS
    for listener in worker.sockets:
        listener.setblocking(False)
        while time.monotonic() < deadline:
            try:
                client, address = listener.accept()
            except OSError:  # BlockingIOError: the backlog is empty
                break
            client.setblocking(True)
            take(listener, client, address)
            drained += 1
    if drained:
        worker.log.info("drained %d queued connections before exiting", drained)


class DrainingSyncWorker(SyncWorker):
    def run(self) -> None:
        super().run()
        _drain_backlog(self, self.handle)


class DrainingThreadWorker(ThreadWorker):
    def set_accept_enabled(self, enabled: bool) -> None:
        # gthread turns accepting off first thing when it stops; take the backlog into the
        # thread pool just before, and its shutdown waits for them like for any connection.
        if not enabled and not self.alive and self._accepting:
            _drain_backlog(self, self._take)
        super().set_accept_enabled(enabled)

    def _take(self, listener: socket.socket, client: socket.socket, address: object) -> None:
        self.nr_conns += 1
        self.enqueue_req(TConn(self.cfg, client, address, listener.getsockname()))
