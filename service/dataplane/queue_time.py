"""Queue time before tfship: the ``X-Request-Start`` header a proxy sets when it accepts."""

from __future__ import annotations

# Set by proxies (nginx: proxy_set_header X-Request-Start "t=${msec}") when they accept a
# request; the time until a worker takes it is the queue time tfship cannot see itself.
REQUEST_START_HEADER = "X-Request-Start"
REQUEST_START_HEADER_ENVIRON = "HTTP_X_REQUEST_START"
# Beyond this the clocks disagree (or the header is junk): not a queue time.
MAX_QUEUE_SECONDS = 3600.0


def request_start(value: str) -> float | None:
    """``t=1700000000.123`` (seconds), or the same in milliseconds or microseconds."""
    try:
        number = float(value.strip().removeprefix("t="))
    except ValueError:
        return None
    if number != number or number <= 0:
        return None
    if number > 1e14:
        return number / 1e6
    if number > 1e11:
        return number / 1e3
    return number


def queue_seconds(header: str | None, received: float) -> float | None:
    """Seconds between the proxy's ``header`` and ``received`` (epoch), or None if there is
    no header (the usual case, answered without parsing), it is junk or the clocks
    disagree."""
    if not header:
        return None
    queued_since = request_start(header)
    if queued_since is None or not 0 <= received - queued_since < MAX_QUEUE_SECONDS:
        return None
    return received - queued_since
