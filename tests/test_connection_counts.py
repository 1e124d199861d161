"""The connection counts workers share (pure: two slots in one process stand for two
workers)."""

from __future__ import annotations

import os

from service.http_server import connection_counts
from service.http_server.connection_counts import ConnectionCounts


def test_each_worker_sees_the_fewest_connections_elsewhere() -> None:
    connection_counts.create(workers=2)
    try:
        first, second = ConnectionCounts(age=1), ConnectionCounts(age=2)
        assert first.offset != second.offset
        first.set(9)
        second.set(2)
        assert first.fewest_elsewhere() == 2
        assert second.fewest_elsewhere() == 9
        connection_counts.clear(os.getpid())
        assert first.fewest_elsewhere() is None  # no other worker left
    finally:
        connection_counts._shared = None


def test_without_shared_counts_a_worker_is_alone() -> None:
    counts = ConnectionCounts(age=1)
    counts.set(100)
    assert counts.fewest_elsewhere() is None
