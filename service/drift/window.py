"""The latest rows' slot counts of one version in one worker, in blocks.

A window of ``rows`` is kept as up to ``BLOCKS`` full blocks of ``rows / BLOCKS`` rows each
plus the block being filled. Blocks, not single rows, are what workers share: each block
carries the time it was last added to, so the server's window is the newest blocks of all
workers together until they hold ``rows`` rows (scores.py) — the latest traffic, to within
one block per worker: the oldest block taken may hold some older rows. Blocks of a fiftieth
of the window keep that under 2 % per worker (with tenths, 20 % of old rows measurably
halved the score of a shift that had replaced the whole window), for 50 small count
vectors per version to publish.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

BLOCKS = 50


@dataclass
class Block:
    updated: float  # time.time() of the last rows added
    rows: int
    counts: np.ndarray  # int64, one per slot


class SlidingCounts:
    def __init__(self, size: int, rows: int) -> None:
        self.size = size
        self.block_rows = max(1, -(-rows // BLOCKS))
        self._full: deque[Block] = deque(maxlen=BLOCKS)
        self._open = Block(0.0, 0, np.zeros(size, dtype=np.int64))
        self._lock = threading.Lock()
        # Bumped by every add: what a worker last published is compared against it.
        self.additions = 0

    def add(self, rows: int, slots: np.ndarray, row_of: np.ndarray) -> None:
        """Count ``rows`` consecutive rows (``row_of``: each slot's row), filling the open
        block and as many new ones as they need, with one bincount."""
        now = time.time()
        with self._lock:
            self.additions += 1
            room = self.block_rows - self._open.rows
            block_of_row = np.zeros(rows, dtype=np.int64)
            if rows > room:
                block_of_row[room:] = 1 + (np.arange(rows - room) // self.block_rows)
            blocks = int(block_of_row[-1]) + 1 if rows else 0
            counts = np.bincount(
                block_of_row[row_of] * self.size + slots, minlength=blocks * self.size
            ).reshape(blocks, self.size)
            rows_in = np.bincount(block_of_row, minlength=blocks)
            for block in range(blocks):
                self._open.counts += counts[block]
                self._open.rows += int(rows_in[block])
                self._open.updated = now
                if self._open.rows >= self.block_rows:
                    self._full.append(self._open)
                    self._open = Block(0.0, 0, np.zeros(self.size, dtype=np.int64))

    def blocks(self) -> list[Block]:
        """A copy of every block with rows, newest first."""
        with self._lock:
            found = [*self._full, self._open] if self._open.rows else list(self._full)
            return [Block(b.updated, b.rows, b.counts.copy()) for b in reversed(found)]
