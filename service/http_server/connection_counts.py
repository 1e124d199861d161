"""How many connections each worker holds, in memory the gunicorn master shares with them.

Kept alive, a connection stays with the worker that accepted it, and nothing in the kernel
spreads them evenly: 16 connections from one client can all land on one worker while
another idles. Each worker writes its count in its slot here as connections open and
close; one that holds more than the least loaded other worker, plus one, closes a
connection after answering it, and the client's next connection goes to a worker waiting
to accept it. Counts are written and read without locks: a stale count only delays the
balancing by a request.

``create()`` runs in the master before it forks (gunicorn.conf.py's on_starting); the
anonymous shared mapping is inherited by every worker. Outside gunicorn there is none, and
a worker is alone.
"""

from __future__ import annotations

import mmap
import os
import struct

_SLOT = struct.Struct("<ii")  # pid, connections

_shared: mmap.mmap | None = None


def create(workers: int) -> None:
    """Room for twice the workers: a replaced worker's slot is freed when it exits, and
    its successor may boot before that."""
    global _shared
    _shared = mmap.mmap(-1, 2 * workers * _SLOT.size)


def _slots() -> int:
    return len(_shared) // _SLOT.size if _shared is not None else 0


def clear(pid: int) -> None:
    """A worker has exited (the master's child_exit): its slot is free again."""
    for slot in range(_slots()):
        if _shared is not None and _SLOT.unpack_from(_shared, slot * _SLOT.size)[0] == pid:
            _SLOT.pack_into(_shared, slot * _SLOT.size, 0, 0)


class ConnectionCounts:
    """This worker's slot, and a look at the others'."""

    def __init__(self, age: int) -> None:
        """``age``: gunicorn's number for the worker, unique and increasing; the search for
        a free slot starts there, so workers booting at once look at different slots."""
        self.offset: int | None = None
        if _shared is None:
            return
        pid = os.getpid()
        slots = _slots()
        for probe in range(slots):
            slot = (age + probe) % slots
            if _SLOT.unpack_from(_shared, slot * _SLOT.size)[0] == 0:
                _SLOT.pack_into(_shared, slot * _SLOT.size, pid, 0)
                # Two workers booting at once may take the same free slot: the one whose
                # pid stayed keeps it, the other looks further.
                if _SLOT.unpack_from(_shared, slot * _SLOT.size)[0] == pid:
                    self.offset = slot * _SLOT.size
                    return

    def set(self, connections: int) -> None:
        if self.offset is not None and _shared is not None:
            _SLOT.pack_into(_shared, self.offset, os.getpid(), connections)

    def fewest_elsewhere(self) -> int | None:
        """The fewest connections another worker holds; None when there is no other."""
        if self.offset is None or _shared is None:
            return None
        fewest = None
        for index, (pid, count) in enumerate(_SLOT.iter_unpack(_shared)):
            if pid and index * _SLOT.size != self.offset and (fewest is None or count < fewest):
                fewest = count
        return fewest
