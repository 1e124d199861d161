"""One default version per model for the whole server, not one per worker.

Each gunicorn worker loads versions itself, so a new version becomes AVAILABLE in each at a
different moment (or, copied in slowly, fails in one and loads in another). If each served
its own newest, a client would see versions alternate from one request to the next. So each
worker publishes, in the server's workers folder, when each version became AVAILABLE in it
and which version it serves by default (``worker_readiness.WorkerBoard``), and every worker
applies the same rule to the same files:

1. **Join**: when every other ready worker serves ``v`` by default and ``v`` is available
   here, serve ``v`` (a worker that restarts takes the server's choice at once).
2. **Switch up together**: the highest version available here and in every ready worker
   becomes the default at ``max(its AVAILABLE times) + SWITCH_DELAY``: the same instant in
   every worker (the same files, the same clock), announced well before it comes.
3. Otherwise the current default stays while it is available here; failing that, the
   newest available version serves (nothing else could).

A worker with no other ready worker to agree with switches at once. Requests that name a
version or a label are not affected: they get what they ask for.
"""

from __future__ import annotations

from dataclasses import dataclass

# How long after the last worker has a version the switch to it happens: far above how
# late a worker reads the others' files (AGREEMENT_POLL_SECONDS), so all switch at once.
SWITCH_DELAY = 1.0
AGREEMENT_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class PeerVersions:
    """What another ready worker published for one model."""

    available_since: dict[int, float]  # version -> when it became AVAILABLE (epoch s)
    default: int | None


@dataclass(frozen=True)
class Choice:
    """The default version now, and a switch already decided: ``pending`` from
    ``switch_at`` (epoch seconds) on."""

    default: int | None
    pending: int | None = None
    switch_at: float = 0.0

    def version_at(self, now: float) -> int | None:
        if self.pending is not None and now >= self.switch_at:
            return self.pending
        return self.default


def choose(
    available_since: dict[int, float],
    current: int | None,
    peers: list[PeerVersions],
    now: float,
) -> Choice:
    """The rule above, for one model: ``available_since`` is this worker's AVAILABLE
    versions, ``current`` the default it serves now, ``peers`` the other ready workers."""
    if not available_since:
        return Choice(None)
    newest = max(available_since)
    if not peers:
        return Choice(newest)
    defaults = {peer.default for peer in peers}
    if len(defaults) == 1:
        (joined,) = defaults
        if joined is not None and joined in available_since and joined != current:
            current = joined
    everywhere = [
        v for v in available_since if all(v in peer.available_since for peer in peers)
    ]
    if current is None or current not in available_since:
        current = max(everywhere) if everywhere else newest
    higher = [v for v in everywhere if v > current]
    if not higher:
        return Choice(current)
    target = max(higher)
    switch_at = max(
        available_since[target], *(peer.available_since[target] for peer in peers)
    ) + SWITCH_DELAY
    if now >= switch_at:
        return Choice(target)
    return Choice(current, target, switch_at)
