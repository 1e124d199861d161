"""A framed request's body, copied once out of the connection's buffer into memory placed
for the runtime, and handed to the app without gunicorn's body reader.

Before, a 100 kB V2 binary body was copied six or seven times between the socket and the
model: slicing and joining it to the header block, through gunicorn's reader (its
``BytesIO`` and ``getvalue``), and once more because tensor bytes after a JSON header of any
length sit at any address, which numpy and onnxruntime take only after a copy. Now the body
is copied once, to a block where the byte after the V2 JSON header
(``Inference-Header-Content-Length``) starts on a 64-byte boundary, so the tensor is
handed to the runtime as it lies (service/codecs/v2_tensors.py: ``raw_array``). A body
with no binary tail (JSON) is copied once to bytes, the type the JSON readers parse and
search, which they would otherwise copy it into again.

The app reads it through ``environ[BODY_ENVIRON]`` (the fast path, whole) or, as WSGI
wants, through ``wsgi.input`` (Flask), a buffered stream over the same memory.
"""

from __future__ import annotations

import io

import numpy as np

BODY_ENVIRON = "tfship.body"
_ALIGNMENT = 64
_BINARY_HEADER = b"\r\ninference-header-content-length:"


def placed_body(buffer: bytearray, start: int, end: int, head: bytes) -> memoryview | bytes:
    """``buffer[start:end]``, copied once, placed so that the V2 binary tensor data that
    ``head`` announces (if any) starts on a 64-byte boundary; a body with no binary tail
    as bytes, which the JSON readers take without another copy."""
    size = end - start
    offset = binary_offset(head, size)
    if not offset:
        with memoryview(buffer) as source:
            return bytes(source[start:end])
    block = np.empty(size + _ALIGNMENT, dtype=np.uint8)
    pad = (-(block.ctypes.data + offset)) % _ALIGNMENT
    body = memoryview(block)[pad : pad + size]
    with memoryview(buffer) as source:  # released before the buffer is trimmed
        body[:] = source[start:end]
    return body


def binary_offset(head: bytes, size: int) -> int:
    """Where the binary tail of a V2 binary request starts in its body (0 if none)."""
    at = head.lower().find(_BINARY_HEADER)
    if at < 0:
        return 0
    value = head[at + len(_BINARY_HEADER) : head.find(b"\r\n", at + 2)].strip()
    # A malformed value is the codec's to refuse; here it only means no placement.
    return int(value) if value.isdigit() and int(value) <= size else 0


class _BodyReader(io.RawIOBase):
    def __init__(self, body: memoryview | bytes) -> None:
        self._body = memoryview(body)  # slices of a view copy nothing
        self._at = 0

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        count = min(len(target), len(self._body) - self._at)
        target[:count] = self._body[self._at : self._at + count]
        self._at += count
        return count


def body_stream(body: memoryview | bytes) -> io.BufferedReader:
    """``wsgi.input`` over the body: a read copies out only what is read."""
    return io.BufferedReader(_BodyReader(body))
