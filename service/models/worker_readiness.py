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

import json
import os
from pathlib import Path
from typing import Any

from tfship.processes import pid_alive

# Set by gunicorn.conf.py's on_starting for the workers it forks; not a user setting.
WORKERS_DIR_VARIABLE = "TFSHIP_WORKERS_DIR"
_PREFIX = "ready-"
_VERSIONS_PREFIX = "versions-"
_DRIFT_PREFIX = "drift-"


def ready_file(folder: Path, pid: int) -> Path:
    return folder / f"{_PREFIX}{pid}"


def versions_file(folder: Path, pid: int) -> Path:
    """What the worker serves (service/models/version_agreement.py): JSON, replaced whole."""
    return folder / f"{_VERSIONS_PREFIX}{pid}.json"


def drift_file(folder: Path, pid: int) -> Path:
    """The worker's drift windows (service/drift/tracker.py): JSON, replaced whole."""
    return folder / f"{_DRIFT_PREFIX}{pid}.json"


def drift_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"{_DRIFT_PREFIX}*.json"))




class WorkerBoard:
    """This worker's entry in the server's readiness folder, and a count of the others'."""

    def __init__(self, folder: Path, expected: int) -> None:
        self.folder = folder
        self.expected = expected
        self._published: bool | None = None
        self._versions_published: bytes | None = None

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
        return len(self._others_ready())

    def _others_ready(self) -> list[int]:
        own = os.getpid()
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:  # the master is gone or going: nobody else is serving
            return []
        pids = []
        for name in names:
            if not name.startswith(_PREFIX) or not name[len(_PREFIX) :].isdigit():
                continue
            pid = int(name[len(_PREFIX) :])
            if pid != own and pid_alive(pid):
                pids.append(pid)
        return pids

    def publish_versions(self, models: dict[str, Any]) -> None:
        """This worker's AVAILABLE versions (with since when) and defaults, per model;
        written only when they change, replaced atomically so no reader sees half."""
        data = json.dumps(models, sort_keys=True).encode()
        if data == self._versions_published:
            return
        path = versions_file(self.folder, os.getpid())
        partial = path.with_suffix(".partial")
        try:
            partial.write_bytes(data)
            os.replace(partial, path)
        except FileNotFoundError:  # the folder is gone: the server is stopping
            return
        self._versions_published = data

    def peer_versions(self) -> list[dict[str, Any]]:
        """What every other ready worker published (publish_versions), as written."""
        found = []
        for pid in self._others_ready():
            try:
                found.append(json.loads(versions_file(self.folder, pid).read_bytes()))
            except (FileNotFoundError, ValueError):  # ready, not published yet: next time
                continue
        return found
