"""A file's change stamp, for files re-read when they change (model config, API keys)."""

from __future__ import annotations

from pathlib import Path


def file_stamp(path: Path) -> tuple[int, int] | None:
    """(mtime in ns, size), or None if the file cannot be stat'ed."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size
