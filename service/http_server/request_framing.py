"""Where one HTTP/1.1 request ends in the bytes read so far: headers, then a body of
``Content-Length`` bytes or chunked, without parsing the request for the app.

The worker (``buffering_worker.py``) reads connections without blocking and feeds what came
to a ``RequestFramer``; only once a request is whole does gunicorn's own parser see it, in
a model thread. So a client that sends a byte at a time holds a connection, never a thread.
Anything whose end could be read two ways (Content-Length with Transfer-Encoding, two
lengths, a coding other than chunked) is refused here, so the framing and gunicorn's parse
of the same bytes cannot disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from service.protocols.request_body import too_large

_HEADER_END = b"\r\n\r\n"
_CRLF = b"\r\n"
# A chunk-size line: hex digits, then extensions (";name" or ";name=value") as RFC 9112
# allows them; anything else is not a chunk size.
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = rb'"(?:[^"\\\r\n]|\\.)*"'
_CHUNK_SIZE = re.compile(
    rb"([0-9A-Fa-f]{1,16})(?:[ \t]*;[ \t]*" + _TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + _TOKEN + rb"|"
    + _QUOTED + rb"))?)*[ \t]*"
)  # fmt: skip
# Longest chunk-size line and trailer section read before the request is refused.
_MAX_CHUNK_LINE = 4096
_MAX_TRAILERS = 8192


class FramingError(Exception):
    """A request refused before the app sees it; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Framed:
    """A whole request: the first ``size`` bytes of the buffer. gunicorn is to see ``head``
    in place of the first ``head_size`` (the same block without ``Expect``: the worker has
    answered it), then the body as it came."""

    head: bytes
    head_size: int
    size: int


@dataclass(frozen=True)
class Head:
    """A request's header block, read: what framing needs of it."""

    head: bytes  # the block as the app will see it (``Expect`` taken out)
    size: int  # bytes of the block in the buffer, final CRLF CRLF included
    content_length: int | None
    chunked: bool
    expects_continue: bool


def read_head(buffer: bytes | bytearray, max_header_bytes: int, searched: int = 0) -> Head | None:
    """The header block at the start of ``buffer``; None while it is incomplete.
    ``searched``: bytes already searched for its end (so a block that arrives a byte at a
    time is not searched from its start each time)."""
    start = max(0, searched - len(_HEADER_END) + 1)
    end = buffer.find(_HEADER_END, start, max_header_bytes + len(_HEADER_END))
    if end < 0:
        if len(buffer) > max_header_bytes:
            raise FramingError(431, f"request headers are over {max_header_bytes} bytes")
        return None
    block = bytes(buffer[:end])
    lines = block.split(_CRLF)
    kept = [lines[0]]
    lengths: list[bytes] = []
    codings: list[bytes] = []
    expects_continue = False
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
            raise FramingError(400, "malformed request header line")
        lowered = name.lower()
        value = value.strip()
        if lowered == b"content-length":
            lengths.append(value)
        elif lowered == b"transfer-encoding":
            codings.append(value.lower())
        elif lowered == b"expect":
            if value.lower() != b"100-continue":
                raise FramingError(417, "the only Expect this server meets is 100-continue")
            # Answered here, once the headers are in; gunicorn would answer it again.
            expects_continue = True
            continue
        kept.append(line)
    if lengths and codings:
        raise FramingError(400, "a request cannot have both Content-Length and Transfer-Encoding")
    content_length = None
    if lengths:
        if len(lengths) > 1 or not lengths[0].isdigit() or len(lengths[0]) > 18:
            raise FramingError(400, "Content-Length must be one decimal number of bytes")
        content_length = int(lengths[0])
    if codings and codings != [b"chunked"]:
        raise FramingError(501, "the only Transfer-Encoding this server takes is chunked")
    head = _CRLF.join(kept) + _HEADER_END
    return Head(head, end + len(_HEADER_END), content_length, bool(codings), expects_continue)


class RequestFramer:
    """Finds the end of one request in a growing buffer; ``feed`` again as bytes come.

    Work is incremental: a chunked body is scanned once, however many reads it takes.
    """

    def __init__(self, max_header_bytes: int, max_body_bytes: int) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.reset()

    def reset(self) -> None:
        """Ready for the next request on the connection."""
        self.head: Head | None = None
        self._searched = 0  # bytes searched for the end of the headers
        self._at = 0  # where the chunked scan has got to
        self._body = 0  # chunk data bytes so far
        self._chunk_left = -1  # data bytes of the current chunk (its CRLF after) to come
        self._in_trailers = False

    def feed(self, buffer: bytes | bytearray) -> Framed | None:
        """The request at the start of ``buffer`` once whole; None while more must come."""
        if self.head is None:
            self.head = read_head(buffer, self.max_header_bytes, self._searched)
            if self.head is None:
                self._searched = len(buffer)
                return None
            length = self.head.content_length
            if length is not None and length > self.max_body_bytes:
                raise FramingError(413, too_large(length, self.max_body_bytes).message)
            self._at = self.head.size
        head = self.head
        end = self._scan_chunks(buffer) if head.chunked else head.size + (head.content_length or 0)
        if end is None or len(buffer) < end:
            return None
        return Framed(head.head, head.size, end)

    def _scan_chunks(self, buffer: bytes | bytearray) -> int | None:
        """Walks chunk sizes, data and trailers; the end of the body once its last chunk
        and trailers are in."""
        while True:
            if self._in_trailers:
                end = buffer.find(_CRLF, self._at, self._at + _MAX_TRAILERS)
                if end < 0:
                    if len(buffer) - self._at > _MAX_TRAILERS:
                        raise FramingError(431, "chunked trailers are too long")
                    return None
                if end == self._at:  # the empty line ends the message
                    return end + len(_CRLF)
                self._at = end + len(_CRLF)
                continue
            if self._chunk_left >= 0:
                if len(buffer) < self._at + self._chunk_left + len(_CRLF):
                    return None
                data_end = self._at + self._chunk_left
                if buffer[data_end : data_end + len(_CRLF)] != _CRLF:
                    raise FramingError(400, "chunk data does not end with CRLF")
                self._at = data_end + len(_CRLF)
                self._chunk_left = -1
                continue
            end = buffer.find(_CRLF, self._at, self._at + _MAX_CHUNK_LINE)
            if end < 0:
                if len(buffer) - self._at > _MAX_CHUNK_LINE:
                    raise FramingError(400, "chunk size line is too long")
                return None
            line = bytes(buffer[self._at : end])
            match = _CHUNK_SIZE.fullmatch(line)
            if match is None:
                raise FramingError(400, f"invalid chunk size line {line[:40]!r}")
            size = int(match.group(1), 16)
            self._at = end + len(_CRLF)
            if size == 0:
                self._in_trailers = True
                continue
            self._body += size
            if self._body > self.max_body_bytes:
                raise FramingError(413, too_large(None, self.max_body_bytes).message)
            self._chunk_left = size
