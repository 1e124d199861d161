"""tfship's gunicorn worker: one event loop reads every connection without blocking, and
only whole requests reach the threads that run models.

gunicorn's sync worker gives a connection the worker's only thread from its first byte, so
four clients sending a header byte every 0.1 s stall it; its gthread worker does the same
with a pool. Here the main thread owns a selector over the listeners and every open
connection: it reads what comes, finds where each request ends (``request_framing.py``),
and answers by itself what needs no app: a request too slow to arrive (408), malformed
framing (400), a body over the limit (413, then a lingering close so that a client that
sends its whole body first still reads the answer), one connection too many (503). A whole
request goes to gunicorn's own parser and WSGI handling, inline when the worker has one
thread (``TFSHIP_THREADS=1``: nothing to hand over, the fastest for small requests), else
in a pool of that many threads (which dynamic batching needs). Keep-alive connections
return to the selector; connections queued when the worker stops are still answered.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import socket
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from queue import Empty, SimpleQueue
from typing import Any

import orjson
from gunicorn import http, util
from gunicorn.http import wsgi
from gunicorn.workers.base import Worker
from werkzeug.http import HTTP_STATUS_CODES

from service.http_server.body_buffers import BODY_ENVIRON, body_stream, placed_body
from service.http_server.connection_counts import ConnectionCounts
from service.http_server.request_framing import FramingError, RequestFramer
from service.settings import ServiceSettings

_READ_SIZE = 256 * 1024
# A header block larger than this is refused (431); gunicorn's own limits on the request
# line and fields still apply when it parses.
MAX_HEADER_BYTES = 64 * 1024
# After an answer that closes the connection: how long, and how many bytes, the worker
# keeps reading (and discarding) so the client is not reset before it reads the answer.
_LINGER_SECONDS = 5.0
_LINGER_BYTES = 64 * 2**20
# How long a stopping worker still takes connections from the listen backlog; well under
# gunicorn's graceful_timeout, after which the master kills it.
_DRAIN_SECONDS = 10.0
# How long a stopping worker keeps an idle keep-alive connection open.
_STOP_KEEPALIVE_SECONDS = 1.0
# Deadlines are checked this often, not at every event: a sweep walks every connection.
_SWEEP_EVERY = 0.1
# The time a response may take to go out; past it the connection is dropped.
_SEND_TIMEOUT = 30.0

IDLE, HEAD, BODY, BUSY, LINGER = "idle", "head", "body", "busy", "linger"


class Connection:
    __slots__ = (
        "address",
        "buffer",
        "deadline",
        "framer",
        "lingered",
        "served",
        "server",
        "sock",
        "state",
    )

    def __init__(
        self, sock: socket.socket, address: Any, server: Any, framer: RequestFramer
    ) -> None:
        self.sock = sock
        self.address = address
        self.server = server
        self.buffer = bytearray()
        self.framer = framer
        self.state = IDLE
        self.deadline = 0.0
        self.lingered = 0
        self.served = 0  # requests answered on it


def _answer(status: int, message: str) -> bytes:
    """A complete closing HTTP response with tfship's JSON error body."""
    body = orjson.dumps({"error": message})
    reason = HTTP_STATUS_CODES.get(status, "Error")
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


class BufferingWorker(Worker):
    def init_process(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.connections: set[Connection] = set()
        self.pool: ThreadPoolExecutor | None = None
        self.finished: SimpleQueue[tuple[Connection, bool]] = SimpleQueue()
        self.wake_read, self.wake_write = os.pipe()
        for end in (self.wake_read, self.wake_write):
            util.set_non_blocking(end)
            util.close_on_exec(end)
        self.next_sweep = 0.0
        super().init_process()  # loads the app, then calls run()

    # --- settings ---

    def _settings(self) -> ServiceSettings:
        extensions = getattr(self.wsgi, "extensions", {})
        return extensions.get("tfship.settings") or ServiceSettings.from_env()

    def run(self) -> None:
        # Imported in the worker, never at module level: gunicorn imports this class in the
        # master, before on_starting has set up prometheus-client's multi-process folder,
        # and a metrics module imported then would count in this process's memory alone.
        from service.metrics import HTTP_REFUSED

        self.refused = HTTP_REFUSED
        settings = self._settings()
        self.header_timeout = settings.header_timeout_seconds
        self.body_timeout = settings.body_timeout_seconds
        self.keepalive = settings.keepalive_seconds
        self.max_connections = settings.max_connections
        self.max_body_bytes = settings.max_body_bytes
        if self.cfg.threads > 1:
            self.pool = ThreadPoolExecutor(self.cfg.threads, thread_name_prefix="tfship-http")
        self.selector.register(self.PIPE[0], selectors.EVENT_READ, self._drain_pipe)
        self.selector.register(self.wake_read, selectors.EVENT_READ, self._on_finished)
        for listener in self.sockets:
            listener.setblocking(False)
            self.selector.register(listener, selectors.EVENT_READ, self._accept)
        self.counts = ConnectionCounts(self.age)
        self.open_connections = 0
        while self.alive:
            self.notify()
            self._turn(1.0)
            if self.ppid != os.getppid():
                self.log.info("Parent changed, shutting down: %s", self)
                break
        self._stop()

    def _turn(self, timeout: float) -> None:
        """One round of the loop: wait for events (at most ``timeout``), run their
        callbacks, then expire what is overdue."""
        now = time.monotonic()
        wait = max(0.0, min(timeout, self.next_sweep - now)) if self.connections else timeout
        try:
            events = self.selector.select(wait)
        except OSError as exc:
            if exc.errno != errno.EINTR:
                raise
            events = []
        for key, _ in events:
            callback: Callable[[Any], None] = key.data
            callback(key.fileobj)
        now = time.monotonic()
        if now >= self.next_sweep:
            self.next_sweep = now + _SWEEP_EVERY
            self._sweep(now)

    def _stop(self) -> None:
        """Stop taking connections, answer those queued and those in hand, then close."""
        for listener in self.sockets:
            self.selector.unregister(listener)
        drained = self._drain_backlog()
        if drained:
            self.log.info("drained %d queued connections before exiting", drained)
        now = time.monotonic()
        deadline = now + self.cfg.graceful_timeout
        for connection in self.connections:
            # Kept-alive ones wait a moment, not their whole keep-alive time: a request on
            # one meanwhile is answered (with Connection: close). A connection never served
            # is a client whose request is on its way (or already in the kernel's buffer):
            # it is answered like any other.
            if connection.state == IDLE and connection.served:
                connection.deadline = min(connection.deadline, now + _STOP_KEEPALIVE_SECONDS)
        while self.connections and time.monotonic() < deadline:
            self.notify()
            self._turn(0.1)
        for connection in list(self.connections):
            self._close(connection)
        if self.pool is not None:
            self.pool.shutdown(wait=True)

    def _drain_backlog(self) -> int:
        drained = 0
        deadline = time.monotonic() + _DRAIN_SECONDS
        for listener in self.sockets:
            while time.monotonic() < deadline and self._accept_one(listener):
                drained += 1
        return drained

    # --- connections ---

    def _accept(self, listener: socket.socket) -> None:
        # One per wake-up: every idle worker is woken by a new connection, and taking a
        # burst of them here would leave the others without (16 connections from one
        # client all went to one worker, at half the server's throughput).
        self._accept_one(listener)

    def _accept_one(self, listener: socket.socket) -> bool:
        try:
            sock, address = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return False
        sock.setblocking(False)
        util.close_on_exec(sock)
        framer = RequestFramer(MAX_HEADER_BYTES, self.max_body_bytes)
        connection = Connection(sock, address, listener.getsockname(), framer)
        self.connections.add(connection)
        self._count()
        if len(self.connections) > self.max_connections:
            self._refuse(
                connection,
                503,
                f"this worker has {self.max_connections} open connections, its limit "
                "(TFSHIP_MAX_CONNECTIONS); retry shortly",
                "too_many_connections",
            )
            return True
        connection.deadline = time.monotonic() + self.header_timeout
        self.selector.register(sock, selectors.EVENT_READ, self._reader(connection))
        return True

    def _reader(self, connection: Connection) -> Callable[[Any], None]:
        return lambda _sock: self._on_readable(connection)

    def _on_readable(self, connection: Connection) -> None:
        try:
            data = connection.sock.recv(_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(connection)
            return
        if not data:
            self._close(connection)
            return
        if connection.state == LINGER:
            connection.lingered += len(data)
            if connection.lingered > _LINGER_BYTES:
                self._close(connection)
            return
        connection.buffer += data
        self._frame(connection)

    def _frame(self, connection: Connection) -> None:
        """Hand the request on once whole; refuse it as soon as it cannot be served."""
        now = time.monotonic()
        if connection.state == IDLE:
            # Empty lines before a request line are to be ignored (RFC 9112, 2.2).
            while connection.buffer[:2] == b"\r\n":
                del connection.buffer[:2]
            if not connection.buffer:
                return
            connection.state = HEAD
            connection.deadline = now + self.header_timeout
        try:
            framed = connection.framer.feed(connection.buffer)
        except FramingError as exc:
            reason = "too_large" if exc.status == 413 else "malformed"
            self._refuse(connection, exc.status, exc.message, reason)
            return
        if framed is None:
            head = connection.framer.head
            if head is not None:
                if connection.state == HEAD and head.expects_continue:
                    self._send_quietly(connection, b"HTTP/1.1 100 Continue\r\n\r\n")
                connection.state = BODY
                connection.deadline = now + self.body_timeout
            return
        body: memoryview | bytes | None = None
        if connection.framer.head is not None and connection.framer.head.chunked:
            # gunicorn's reader decodes the chunks: it gets them as they came.
            data = framed.head + bytes(connection.buffer[framed.head_size : framed.size])
        else:
            data = framed.head
            body = placed_body(connection.buffer, framed.head_size, framed.size, data)
        del connection.buffer[: framed.size]
        connection.framer.reset()
        connection.state = BUSY
        self.selector.unregister(connection.sock)
        if self.pool is None:
            self._finish(connection, self._handle(connection, data, body))
        else:
            future = self.pool.submit(self._handle, connection, data, body)
            future.add_done_callback(lambda done: self._finished_in_pool(connection, done))

    def _finished_in_pool(self, connection: Connection, done: Future[bool]) -> None:
        """In the pool's thread: hand the connection back to the loop."""
        keep = False if done.cancelled() or done.exception() else done.result()
        self.finished.put((connection, keep))
        with contextlib.suppress(BlockingIOError):  # full: the loop is being woken anyway
            os.write(self.wake_write, b".")

    def _on_finished(self, pipe: int) -> None:
        self._drain_pipe(pipe)
        while True:
            try:
                connection, keep = self.finished.get_nowait()
            except Empty:
                return
            self._finish(connection, keep)

    def _finish(self, connection: Connection, keep: bool) -> None:
        """After a response: serve what the client sent meanwhile, wait for its next
        request, or close."""
        if connection not in self.connections:
            return
        connection.served += 1
        if not keep:
            # The request was read whole, so a plain close resets nothing, unless the
            # client already sent more (pipelined): then linger so it reads the answer.
            if connection.buffer:
                self._linger(connection)
            else:
                self._close(connection)
            return
        connection.sock.setblocking(False)
        connection.state = IDLE
        linger = self.keepalive if self.alive else _STOP_KEEPALIVE_SECONDS
        connection.deadline = time.monotonic() + linger
        self.selector.register(connection.sock, selectors.EVENT_READ, self._reader(connection))
        if connection.buffer:  # pipelined: the next request may be whole already
            self._frame(connection)

    def _sweep(self, now: float) -> None:
        for connection in list(self.connections):
            if connection.state == BUSY or connection.deadline > now:
                continue
            if connection.state == HEAD:
                self._refuse(
                    connection,
                    408,
                    f"request headers took over {self.header_timeout:g} s to arrive "
                    "(TFSHIP_HEADER_TIMEOUT_SECONDS)",
                    "header_timeout",
                )
            elif connection.state == BODY:
                self._refuse(
                    connection,
                    408,
                    f"no request body bytes for {self.body_timeout:g} s "
                    "(TFSHIP_BODY_TIMEOUT_SECONDS)",
                    "body_timeout",
                )
            else:  # idle keep-alive, or a linger that has run its time
                self._close(connection)

    def _refuse(self, connection: Connection, status: int, message: str, reason: str) -> None:
        self.refused.labels(reason).inc()
        self.log.info("HTTP %d to %s before the app: %s", status, connection.address, message)
        self._send_quietly(connection, _answer(status, message))
        self._linger(connection)

    def _send_quietly(self, connection: Connection, data: bytes) -> None:
        """Best effort, without blocking: these answers are a few hundred bytes, which an
        empty socket buffer always takes."""
        with contextlib.suppress(OSError):
            connection.sock.send(data)

    def _linger(self, connection: Connection) -> None:
        """Close after the client has read the answer: no more writes, read and discard
        until it closes, for a bounded time and number of bytes."""
        try:
            connection.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(connection)
            return
        connection.sock.setblocking(False)
        connection.buffer.clear()
        connection.state = LINGER
        self._count()
        connection.deadline = time.monotonic() + _LINGER_SECONDS
        try:
            self.selector.modify(connection.sock, selectors.EVENT_READ, self._reader(connection))
        except KeyError:
            self.selector.register(connection.sock, selectors.EVENT_READ, self._reader(connection))

    def _count(self) -> None:
        """Connections that may still send requests (not those closing), for the others
        to see."""
        count = sum(1 for c in self.connections if c.state != LINGER)
        if count != self.open_connections:
            self.open_connections = count
            self.counts.set(count)

    def _close(self, connection: Connection) -> None:
        self.connections.discard(connection)
        self._count()
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(connection.sock)
        util.close(connection.sock)

    def _drain_pipe(self, pipe: int) -> None:
        """Empty a wake-up pipe (signals', or the pool's): its bytes only meant "look"."""
        try:
            while os.read(pipe, 4096):
                pass
        except BlockingIOError:
            pass

    def _loaded(self) -> bool:
        """Whether this worker holds more connections than the least loaded other one,
        plus one: then the connection is closed after its answer, and the client's next
        connection goes to a worker waiting to accept it (connection_counts.py). Kept
        alive, connections stay where they were first accepted, which can leave one worker
        with all the traffic and another idle."""
        fewest = self.counts.fewest_elsewhere()
        return fewest is not None and self.open_connections > fewest + 1

    # --- one whole request, as gunicorn's workers handle it ---

    def _handle(self, connection: Connection, data: bytes, body: memoryview | bytes | None) -> bool:
        """Parse and answer one buffered request (``body``: its Content-Length body, apart
        from ``data``; None for a chunked one, which ``data`` holds); whether the
        connection stays open."""
        sock = connection.sock
        sock.setblocking(True)
        sock.settimeout(_SEND_TIMEOUT)
        request = None
        try:
            parser = http.get_parser(self.cfg, [data], connection.address)
            request = next(parser)
            return self._respond(request, connection, body)
        except (StopIteration, http.errors.NoMoreData):
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, None):
                self.log.exception("Socket error processing request.")
            return False
        except Exception as exc:
            self.handle_error(request, sock, connection.address, exc)
            return False

    def _respond(
        self, request: Any, connection: Connection, body: memoryview | bytes | None
    ) -> bool:
        environ: dict[str, Any] = {}
        response = None
        try:
            self.cfg.pre_request(self, request)
            started = datetime.now()
            response, environ = wsgi.create(
                request, connection.sock, connection.address, connection.server, self.cfg
            )
            environ["wsgi.multithread"] = self.pool is not None
            if body is not None:
                environ["wsgi.input"] = body_stream(body)
                environ[BODY_ENVIRON] = body
            self.nr += 1
            if self.nr >= self.max_requests:
                if self.alive:
                    self.log.info("Autorestarting worker after current request.")
                    self.alive = False
                response.force_close()
            if not self.alive or self._loaded():
                response.force_close()
            answer = self.wsgi(environ, response.start_response)
            try:
                for item in answer:
                    response.write(item)
                response.close()
            finally:
                self.log.access(response, request, environ, datetime.now() - started)
                if hasattr(answer, "close"):
                    answer.close()
            return not response.should_close()
        except (Exception, SystemExit):
            if response is not None and response.headers_sent:
                # Half a response is out: a 500 after it would corrupt it.
                self.log.exception("Error handling request")
                return False
            raise  # to _handle, which answers 500 (or lets SystemExit end the worker)
        finally:
            try:
                self.cfg.post_request(self, request, environ, response)
            except Exception:
                self.log.exception("Exception in post_request hook")
