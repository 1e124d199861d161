"""Readiness of the whole server, not of the one worker that happens to answer.

Each gunicorn worker loads its models itself, after the fork. A load balancer (or a test)
asking ``/readyz`` reaches one worker; if that one were the only one asked, the server would
report ready while its other workers are still loading or failed to load, and requests the
kernel hands to those would wait or fail. So each worker publishes its own readiness as a
file in a folder the gunicorn master made for this server (``WORKERS_DIR_VARIABLE``), and a
worker reports ready only when it is ready and so are as many live workers as the server
runs. Outside gunicorn (an app in a test) there is no folder and one worker is the server.
"""

from __future__ import annotations

import os
from pathlib import Path

# Set by gunicorn.conf.py's on_starting for the workers it forks; not a user setting.
WORKERS_DIR_VARIABLE = "TFSHIP_WORKERS_DIR"
_PREFIX = "ready-"


def ready_file(folder: Path, pid: int) -> Path:
    return folder / f"{_PREFIX}{pid}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's: cannot be ours, but not dead either
        return True
    return True


class WorkerBoard:
    """This worker's entry in the server's readiness folder, and a count of the others'."""

    def __init__(self, folder: Path, expected: int) -> None:
        self.folder = folder
        self.expected = expected
        self._published: bool | None = None

    @classmethod
    def from_env(cls, expected: int) -> WorkerBoard | None:
        folder = os.environ.get(WORKERS_DIR_VARIABLE)
        return cls(Path(folder), expected) if folder else None

    def publish(self, ready: bool) -> None:
        """Record this worker's readiness (a file exists while it is ready)."""
        if ready == self._published:
            return
        path = ready_file(self.folder, os.getpid())
        if ready:
            path.touch()
        else:
            path.unlink(missing_ok=True)
        self._published = ready

    def others_ready(self) -> int:
        """Live workers other than this one whose models are all available."""
        own = os.getpid()
        count = 0
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:  # the master is gone or going: nobody else is serving
            return 0
        for name in names:
            if not name.startswith(_PREFIX) or not name[len(_PREFIX) :].isdigit():
                continue
            pid = int(name[len(_PREFIX) :])
            if pid != own and _alive(pid):
                count += 1
        return count
