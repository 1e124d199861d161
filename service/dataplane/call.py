"""The record of one request or RPC as it passes through the dataplane."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from service.auth import Client
from service.metrics import NO_MODEL


@dataclass(slots=True, eq=False)
class Call:
    """Filled in as the call proceeds: its metrics and access line are written from it.

    ``protocol`` and ``api`` are None for calls that are not to a model API (health,
    metrics, unknown paths): they get an access line but no request metrics.
    """

    protocol: str | None
    api: str | None
    request_id: str
    started: float = field(default_factory=time.perf_counter)
    # Wall-clock arrival, against a proxy's X-Request-Start for the queue time.
    received: float = field(default_factory=time.time)
    # Set once the model is known to the registry (never a made-up name: metric labels).
    model: str = NO_MODEL
    version: str = ""
    client: Client | None = None
