"""Where a request ends, found by the HTTP worker before gunicorn parses it: fed whole, a
byte at a time, pipelined, and refused for framing two parsers could read two ways."""

from __future__ import annotations

import pytest

from service.http_server.request_framing import FramingError, RequestFramer

GET = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
POST = b"POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
CHUNKED = (
    b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;name=value\r\nhello\r\n3\r\n, w\r\n0\r\nTrailer: t\r\n\r\n"
)


def framer(max_body: int = 1000) -> RequestFramer:
    return RequestFramer(max_header_bytes=4096, max_body_bytes=max_body)


@pytest.mark.parametrize("request_bytes", [GET, POST, CHUNKED])
def test_a_request_is_framed_whole_or_a_byte_at_a_time(request_bytes: bytes) -> None:
    framed = framer().feed(request_bytes + GET)  # the next request, pipelined, is left alone
    assert framed is not None and framed.size == len(request_bytes)
    growing, parts = bytearray(), framer()
    for index in range(len(request_bytes)):
        growing.append(request_bytes[index])
        found = parts.feed(growing)
        assert (found is None) == (index < len(request_bytes) - 1)
    assert found is not None and found.size == len(request_bytes)


def test_expect_100_continue_is_taken_out_of_the_head_gunicorn_sees() -> None:
    request = b"POST /p HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    parts = framer()
    assert parts.feed(request) is None
    assert parts.head is not None and parts.head.expects_continue
    framed = parts.feed(request + b"ok")
    assert framed is not None
    assert framed.head == b"POST /p HTTP/1.1\r\nContent-Length: 2\r\n\r\n"
    assert framed.size == len(request) + 2


@pytest.mark.parametrize(
    "request_bytes, status, needle",
    [
        (b"POST /p HTTP/1.1\r\nContent-Length: 5000\r\n\r\n", 413, "request body is 5000 bytes"),
        (b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "invalid chunk"),
        (b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5 ;\x01\r\n", 400, "chunk"),
        # A chunk size beyond any body: refused at once, not waited for.
        (
            b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffff\r\n",
            413,
            "the limit is 1000 bytes",
        ),
        (b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n", 400, "CRLF"),
        (
            b"POST /p HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
            "both Content-Length and Transfer-Encoding",
        ),
        (b"POST /p HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400, "one"),
        (b"POST /p HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "decimal"),
        (b"POST /p HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "chunked"),
        (b"GET / HTTP/1.1\r\n folded: x\r\n\r\n", 400, "malformed"),
        (b"GET / HTTP/1.1\r\nExpect: magic\r\n\r\n", 417, "100-continue"),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 5000, 431, "over 4096 bytes"),
    ],
)
def test_framing_that_cannot_be_served_is_refused(
    request_bytes: bytes, status: int, needle: str
) -> None:
    with pytest.raises(FramingError) as caught:
        framer().feed(request_bytes)
    assert caught.value.status == status
    assert needle in caught.value.message


def test_chunked_bodies_over_the_limit_are_refused_as_they_arrive() -> None:
    chunk = b"64\r\n" + b"x" * 100 + b"\r\n"
    parts = framer(max_body=250)
    head = b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert parts.feed(head + chunk * 2) is None
    with pytest.raises(FramingError) as caught:
        parts.feed(head + chunk * 3)
    assert caught.value.status == 413
