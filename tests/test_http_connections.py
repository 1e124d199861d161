"""The HTTP worker's connections on a real server: slow clients hold a connection, never a
worker; timeouts, the connection cap and framing errors are answered with a message;
a 413 reaches a client that sends its whole body first; keep-alive, pipelining and
``Expect: 100-continue`` work. Each attack is bounded in count and time."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.client import HTTPConnection
from typing import Any, BinaryIO

import pytest
from conftest import Server, TrainedRepo

BODY = json.dumps({"instances": [[[[0.0]] * 8] * 8]}).encode()
PREDICT = "/v1/models/digits:predict"
MAX_BODY = 100_000
HEAD = f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module", params=[1, 4], ids=["one-thread", "four-threads"])
def server(request: Any, trained_repo: TrainedRepo, start_server: Any) -> Server:
    # One worker: every slow connection lands on the process that must still answer.
    started = start_server(
        trained_repo.path, "--workers", "1", "--threads", str(request.param),
        "--max-body-bytes", str(MAX_BODY), "--max-connections", "40",
        "--header-timeout-seconds", "2", "--body-timeout-seconds", "2",
    )  # fmt: skip
    started.wait_ready()
    return started


def predict(server: Server, timeout: float = 20) -> int:
    connection = HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        connection.request("POST", PREDICT, BODY, {"Content-Type": "application/json"})
        return connection.getresponse().status
    finally:
        connection.close()


@contextmanager
def raw(server: Server) -> Iterator[socket.socket]:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    try:
        yield sock
    finally:
        sock.close()


def read_response(source: socket.socket | BinaryIO) -> tuple[int, dict[str, str], bytes]:
    """One response: status, headers, body (by Content-Length). Pipelined responses need
    one reader for them all (``sock.makefile("rb")``): a bare socket's reads may take the
    next response's bytes too."""
    reader = source.makefile("rb") if isinstance(source, socket.socket) else source
    status_line = reader.readline()
    assert status_line, "connection closed before a response"
    headers = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = reader.read(int(headers.get("content-length", 0)))
    return int(status_line.split()[1]), headers, body


def test_slow_header_clients_do_not_hold_the_worker(server: Server) -> None:
    # Eight connections dribbling headers took a one-thread worker down before; the
    # ordinary calls must be answered while all eight are still open and dribbling.
    slow = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(8)]
    try:
        for sock in slow:
            sock.sendall(HEAD.encode())
        for _ in range(5):
            for sock in slow:
                sock.sendall(b"X")
            assert predict(server, timeout=10) == 200
        # The slow ones are then timed out with a message, not left hanging.
        deadline = time.monotonic() + 20
        for sock in slow:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            status, headers, body = read_response(sock)
            assert status == 408
            assert headers["connection"] == "close"
            assert "TFSHIP_HEADER_TIMEOUT_SECONDS" in json.loads(body)["error"]
    finally:
        for sock in slow:
            sock.close()


def test_a_body_shorter_than_its_content_length_times_out_without_holding_the_worker(
    server: Server,
) -> None:
    with raw(server) as sock:
        sock.sendall((HEAD + "Content-Length: 1000\r\n\r\n").encode() + b"{")
        assert predict(server, timeout=10) == 200
        status, _, body = read_response(sock)
    assert status == 408
    assert "TFSHIP_BODY_TIMEOUT_SECONDS" in json.loads(body)["error"]


def test_connections_over_the_cap_are_refused_with_a_503(server: Server) -> None:
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(40)]
    try:
        with raw(server) as extra:
            status, _, body = read_response(extra)
        assert status == 503
        assert "open connections, its limit (TFSHIP_MAX_CONNECTIONS)" in json.loads(body)["error"]
    finally:
        for sock in idle:
            sock.close()
    # The cap counts open connections only: once those close, calls are answered again.
    deadline = time.monotonic() + 10
    while predict(server) != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)


@pytest.mark.parametrize(
    "tail, status, needle",
    [
        ("Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "invalid chunk size line"),
        ("Transfer-Encoding: chunked\r\n\r\n5;\x01\r\nhello\r\n", 400, "invalid chunk size"),
        # Refused as soon as the size is read, not waited for.
        ("Transfer-Encoding: chunked\r\n\r\nffffffffffffff\r\n", 413, "TFSHIP_MAX_BODY_BYTES"),
        ("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "both Content-Length"),
    ],
)
def test_bad_framing_is_a_4xx_naming_the_problem(
    server: Server, tail: str, status: int, needle: str
) -> None:
    with raw(server) as sock:
        sock.sendall((HEAD + tail).encode())
        got, _, body = read_response(sock)
    assert got == status
    assert needle in json.loads(body)["error"]


def test_a_413_reaches_a_client_that_sends_the_whole_body_first(server: Server) -> None:
    body = json.dumps({"instances": [], "pad": "x" * (4 * MAX_BODY)}).encode()
    request = urllib.request.Request(
        server.url + PREDICT, data=body, headers={"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=20)
    assert caught.value.code == 413
    assert "the limit is 100000 bytes" in json.loads(caught.value.read())["error"]


def test_keep_alive_pipelining_and_expect_continue(server: Server) -> None:
    request = (HEAD + f"Content-Length: {len(BODY)}\r\n\r\n").encode() + BODY
    with raw(server) as sock:
        reader = sock.makefile("rb")
        sock.sendall(request * 3)  # three requests in one write
        for _ in range(3):
            status, headers, _ = read_response(reader)
            assert status == 200
            assert headers.get("connection") != "close"
        # Then a client that waits for 100 Continue before its body, on the same connection.
        waits = f"Expect: 100-continue\r\nContent-Length: {len(BODY)}\r\n\r\n"
        sock.sendall((HEAD + waits).encode())
        assert reader.readline() == b"HTTP/1.1 100 Continue\r\n"
        assert reader.readline() == b"\r\n"
        sock.sendall(BODY)
        status, _, answer = read_response(reader)
    assert status == 200
    assert len(json.loads(answer)["predictions"]) == 1


def test_refusals_are_counted_by_reason(server: Server) -> None:
    metrics = server.get("/metrics").body.decode()
    for reason in ("header_timeout", "malformed", "too_large"):
        assert f'tfship_http_refused_total{{reason="{reason}"}}' in metrics


def test_kept_alive_connections_spread_over_the_workers(
    trained_repo: TrainedRepo, start_server: Any
) -> None:
    # Sixteen connections opened at once by one client, each kept alive for its calls:
    # before, all sixteen could stay with the worker that accepted them, the other idle.
    server = start_server(trained_repo.path, "--workers", "2")
    server.wait_ready()
    connections = [HTTPConnection("127.0.0.1", server.port, timeout=30) for _ in range(16)]
    for connection in connections:
        connection.connect()  # all sixteen opened before any request, as a pool does
    try:
        for _ in range(20):
            for connection in connections:
                connection.request("POST", PREDICT, BODY, {"Content-Type": "application/json"})
            for connection in connections:
                response = connection.getresponse()
                assert response.status == 200
                response.read()  # an HTTPConnection reconnects by itself once closed
    finally:
        for connection in connections:
            connection.close()
    pids = [
        line["pid"]
        for line in (json.loads(text) for text in server.log().splitlines() if text[:1] == "{")
        if line.get("path") == PREDICT
    ]
    counts = sorted(Counter(pids).values())
    assert len(counts) == 2 and counts[0] >= len(pids) // 4, counts
