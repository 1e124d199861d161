"""Whether a process id names a live process (lock files, worker files, capture files)."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's: cannot be ours, but not dead either
        return True
    return True
