"""Dynamic batching: requests for one model version, run together as one runtime call.

Per model, by the model config file (``batching:``), with TF Serving's parameter names:

- ``max_batch_size``: most rows in one runtime call. A request with more rows than this runs
  on its own, unbatched.
- ``batch_timeout_micros``: how long a batch may wait for more rows. It applies only while
  requests keep arriving (the previous batch held more than one request): a request that
  finds the batcher idle runs at once, so batching adds no latency to a quiet server.
- ``max_enqueued_batches``: the queue holds at most this many batches' worth of rows; a
  request that would overflow it is refused at once with 503 (gRPC RESOURCE_EXHAUSTED)
  instead of waiting behind a queue that only grows.
- ``allowed_batch_sizes``: when given, a batch is padded up to the next of these sizes
  (repeating its first row; the padding's outputs are dropped), so a runtime sees few
  distinct shapes.

Batches form while the runtime is busy, so they grow with the load; the thread that runs
them is a request thread (see Batcher), and the others wait for their slice of the result.
Only requests that agree on everything but the batch dimension (input dtypes and shapes,
requested outputs) share a batch. If a batch of several requests fails, each request is
run again alone, so one bad request cannot fail the others (a compute timeout is not
retried: the others would only time out again).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.errors import ComputeTimeout, Overloaded
from service.metrics import BATCH_QUEUE_SECONDS, BATCH_QUEUED_ROWS
from service.models.model_config import BatchingConfig

log = logging.getLogger("tfship.batching")

RunBatch = Callable[[Mapping[str, np.ndarray], Sequence[str] | None], dict[str, np.ndarray]]


@dataclass(eq=False)
class _Task:
    inputs: Mapping[str, np.ndarray]
    outputs: Sequence[str] | None
    rows: int
    key: Hashable
    enqueued: float
    # Set when the task is finished, or when its thread is to take over running batches.
    wake: threading.Event = field(default_factory=threading.Event)
    finished: bool = False
    result: dict[str, np.ndarray] | None = None
    error: BaseException | None = None


def _key(inputs: Mapping[str, np.ndarray], outputs: Sequence[str] | None) -> Hashable:
    """What two requests must share to be run in one batch."""
    return (
        tuple(outputs) if outputs else None,
        tuple((name, a.dtype.str, a.shape[1:]) for name, a in sorted(inputs.items())),
    )


def padded_size(rows: int, allowed: Sequence[int]) -> int:
    """The smallest allowed size that holds ``rows`` (``rows`` itself when none is given)."""
    return next((size for size in allowed if size >= rows), rows)


class Batcher:
    """No thread of its own: the request thread that finds no batch running runs the batches
    (its own and whatever queued meanwhile) until its request is answered, then hands that
    role to the oldest waiting request. An idle model is thus called from the request's own
    thread, with no hand-off between threads."""

    def __init__(
        self, model: str, config: BatchingConfig, run: RunBatch, version: int
    ) -> None:
        self.model = model
        self.config = config
        self._run = run
        self._timeout = config.batch_timeout_micros / 1e6
        self._max_queued_rows = config.max_batch_size * config.max_enqueued_batches
        self._queue: deque[_Task] = deque()
        self._queued_rows = 0
        self._cond = threading.Condition()
        self._leading = False  # a request thread is running batches
        self._stopped = False
        # Whether the last batch held more than one request: the sign of a load worth
        # waiting batch_timeout_micros for.
        self._busy = False
        self._queue_seconds = BATCH_QUEUE_SECONDS.labels(model, str(version))
        self._queued_rows_gauge = BATCH_QUEUED_ROWS.labels(model)

    def predict(
        self, inputs: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        rows = len(next(iter(inputs.values())))
        if rows > self.config.max_batch_size:
            self._queue_seconds.observe(0.0)  # run at once, yet counted as queued
            return self._run(inputs, outputs)
        task = _Task(inputs, outputs, rows, _key(inputs, outputs), time.perf_counter())
        with self._cond:
            if self._stopped:
                raise RuntimeError("batcher used after stop()")  # the registry drains first
            if self._queued_rows + rows > self._max_queued_rows:
                raise Overloaded(
                    f"model '{self.model}' is overloaded: its batching queue is full "
                    f"({self._queued_rows} rows waiting, max_enqueued_batches "
                    f"{self.config.max_enqueued_batches} x max_batch_size "
                    f"{self.config.max_batch_size}); retry shortly"
                )
            self._queue.append(task)
            self._queued_rows += rows
            self._queued_rows_gauge.inc(rows)
            lead = not self._leading
            if lead:
                self._leading = True
            else:
                self._cond.notify()  # a leader waiting out batch_timeout_micros
        if not lead:
            task.wake.wait()
        if not task.finished:  # first in, or handed the lead
            self._lead(task)
        if task.error is not None:
            raise task.error
        assert task.result is not None
        return task.result

    def stop(self) -> None:
        """Refuse further requests (the registry stops sending them first)."""
        with self._cond:
            self._stopped = True

    def _lead(self, own: _Task) -> None:
        try:
            while not own.finished:
                self._execute(self._next_batch())
        finally:  # whatever happened, never leave the queue without a leader
            with self._cond:
                if self._queue:
                    self._queue[0].wake.set()
                else:
                    self._leading = False

    def _next_batch(self) -> list[_Task]:
        with self._cond:
            batch = [self._queue.popleft()]
            rows, closed = self._take(batch, batch[0].rows)
            if self._busy and self._timeout:
                deadline = batch[0].enqueued + self._timeout
                while not closed:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0 or not self._cond.wait(remaining):
                        break
                    rows, closed = self._take(batch, rows)
            self._queued_rows -= rows
            self._queued_rows_gauge.dec(rows)
            self._busy = len(batch) > 1
        return batch

    def _take(self, batch: list[_Task], rows: int) -> tuple[int, bool]:
        """Move queued tasks that match the batch's head into it, in order, while they fit
        (lock held). Returns the batch's rows, and whether it is closed: full, or the next
        matching task does not fit (waiting longer would not grow it)."""
        head = batch[0]
        kept: deque[_Task] = deque()
        closed = rows >= self.config.max_batch_size
        while self._queue:
            task = self._queue.popleft()
            if not closed and task.key == head.key:
                if rows + task.rows <= self.config.max_batch_size:
                    batch.append(task)
                    rows += task.rows
                    closed = rows >= self.config.max_batch_size
                    continue
                closed = True
            kept.append(task)
        self._queue = kept
        return rows, closed

    def _execute(self, batch: list[_Task]) -> None:
        started = time.perf_counter()
        for task in batch:
            self._queue_seconds.observe(started - task.enqueued)
        try:
            results = self._run_batch(batch)
        except Exception as exc:
            if len(batch) == 1 or isinstance(exc, ComputeTimeout):
                for task in batch:
                    task.error = exc
                    task.finished = True
                    task.wake.set()
                return
            log.warning(
                "model %s: a batch of %d requests failed (%s: %s); running them one by one",
                self.model,
                len(batch),
                type(exc).__name__,
                exc,
            )
            for task in batch:
                self._execute([task])
            return
        for task, result in zip(batch, results, strict=True):
            task.result = result
            task.finished = True
            task.wake.set()

    def _run_batch(self, batch: list[_Task]) -> list[dict[str, np.ndarray]]:
        head = batch[0]
        if len(batch) == 1 and not self.config.allowed_batch_sizes:
            return [self._run(head.inputs, head.outputs)]
        rows = sum(task.rows for task in batch)
        pad = padded_size(rows, self.config.allowed_batch_sizes) - rows
        inputs: dict[str, np.ndarray] = {}
        for name in head.inputs:
            parts = [task.inputs[name] for task in batch]
            if pad:
                parts.append(np.repeat(parts[0][:1], pad, axis=0))
            inputs[name] = np.concatenate(parts) if len(parts) > 1 else parts[0]
        outputs = self._run(inputs, head.outputs)
        results, start = [], 0
        for task in batch:
            end = start + task.rows
            results.append({name: value[start:end] for name, value in outputs.items()})
            start = end
        return results


def describe(config: BatchingConfig) -> dict[str, Any]:
    """The parameters as the status and readiness reports show them."""
    return {
        "max_batch_size": config.max_batch_size,
        "batch_timeout_micros": config.batch_timeout_micros,
        "max_enqueued_batches": config.max_enqueued_batches,
        "allowed_batch_sizes": list(config.allowed_batch_sizes),
    }
