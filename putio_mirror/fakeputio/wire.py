"""HTTP plumbing: one threading HTTP/1.1 server per logical host on 127.0.0.1.

Each server tracks its open connections and handler threads so that stopping
is quick even while a client sits on a keep-alive or a stalled download.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import socketserver
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any

from putio_mirror.fakeputio.http1 import (
    CONTINUE,
    BadRequest,
    HeaderMap,
    read_body,
    read_head,
    response_head,
)
from putio_mirror.fakeputio.replies import Reply, html_reply

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Incoming:
    """One request as a fake host received it."""

    host: str
    method: str
    path: str
    query: dict[str, str]
    headers: HeaderMap
    body: bytes


Responder = Callable[[Incoming], Reply]


class HostServer(ThreadingHTTPServer):
    """Given a host label and a responder, serve HTTP/1.1 on an ephemeral loopback port."""

    daemon_threads = True
    block_on_close = False

    def __init__(
        self, label: str, respond: Responder, refuse: Callable[[], bool], stopping: threading.Event
    ) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.label = label
        self.respond = respond
        self.refuse = refuse
        self.stopping = stopping
        self.stall_release: Callable[[], float] = lambda: 30.0
        self.latency: Callable[[], float] = lambda: 0.0
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._handler_threads: set[threading.Thread] = set()
        self._serving: threading.Thread | None = None
        self._closing = False
        self.body_bytes_sent = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> None:
        self._serving = threading.Thread(target=self._accept_until_closing, daemon=True)
        self._serving.start()

    def _accept_until_closing(self) -> None:
        # A blocking accept() rather than serve_forever's polling, which would wake three
        # servers 50 times a second each, charging benchmarks ~15 ms of CPU a second.
        while True:
            try:
                request, client_address = self.socket.accept()
            except OSError:
                return  # the listening socket was closed
            if self._closing:
                request.close()
                return
            self.process_request(request, client_address)

    def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, cut every open connection, and wait for handler threads."""
        self._closing = True
        if self._serving is not None:
            # A connection of our own wakes the accept() so that it sees the server closing.
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.server_address[1]), grace).close()
            self._serving.join(grace)
        with self._lock:
            connections, threads = list(self._connections), list(self._handler_threads)
        for connection in connections:
            _shut(connection)
        for thread in threads:
            thread.join(grace)
        self.server_close()

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._handle_in_thread, args=(request, client_address), daemon=True
        )
        with self._lock:
            self._connections.add(request)
            self._handler_threads.add(thread)
        thread.start()

    def _handle_in_thread(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._connections.discard(request)
                self._handler_threads.discard(threading.current_thread())

    def count_sent(self, amount: int) -> None:
        with self._lock:
            self.body_bytes_sent += amount

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hang up mid-answer on purpose in tests; that is not worth a traceback on stderr.
        _log.debug("connection from %s ended with an error", client_address, exc_info=True)


def _shut(connection: socket.socket) -> None:
    # The handler may have closed or reset the connection already.
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)


class _Handler(socketserver.StreamRequestHandler):
    # Streamed bodies go out in several writes; with Nagle on, the client's delayed ACK
    # would hold a small last piece back by ~40 ms.
    disable_nagle_algorithm = True
    server: HostServer

    def handle(self) -> None:
        if self.server.refuse():
            self._reset()
            return
        try:
            while self._one_request():
                pass
        except BadRequest as error:
            self._send_bad_request(error.status)
        except OSError:
            pass  # the client hung up, or we reset the connection on purpose

    def _one_request(self) -> bool:
        """Read and answer one request; return whether the connection serves another."""
        head = read_head(self.rfile)
        if head is None:
            return False
        if self.server.refuse():
            self._reset()  # an outage also hits connections kept alive from before it
            return False
        if head.expects_continue:
            self.connection.sendall(CONTINUE)
        incoming = Incoming(
            self.server.label,
            head.method,
            head.path,
            head.query,
            head.headers,
            read_body(self.rfile, head.headers),
        )
        return self._send(self.server.respond(incoming), head.method) and head.keep_alive

    def _send(self, reply: Reply, method: str) -> bool:
        """Given a reply, send it (or misbehave as it says); return False if the connection
        was cut."""
        delay = reply.delay + self.server.latency()
        if delay:
            self.server.stopping.wait(delay)
        if reply.reset:
            self._reset()
            return False
        head = response_head(reply.status, reply.headers, reply.content_length())
        if method == "HEAD":
            self.connection.sendall(head)
        elif reply.stream is None and reply.cut_after is None:
            self.connection.sendall(head + reply.body)  # one write: one packet for small answers
            if reply.body:
                self.server.count_sent(len(reply.body))
                reply.sent = len(reply.body)
        else:
            return self._write_body(reply, head)
        return True

    def _send_bad_request(self, status: int) -> None:
        page = html_reply(status)
        with contextlib.suppress(OSError):
            self.connection.sendall(
                response_head(status, [*page.headers, ("Connection", "close")], len(page.body))
                + page.body
            )

    def _write_body(self, reply: Reply, head: bytes) -> bool:
        """Given a reply and its head, send the head with the body's first piece, then the
        body's other pieces; return False if it was cut as armed."""
        limit, sent = reply.cut_after, 0
        for piece in reply.pieces():
            if limit is not None and sent + len(piece) >= limit:
                self.connection.sendall(head + piece[: limit - sent])
                self.server.count_sent(limit - sent)
                sent = reply.sent = limit
                head = b""
                break
            self.connection.sendall(head + piece)  # a small file: one write, one packet
            head = b""
            self.server.count_sent(len(piece))
            sent += len(piece)
            reply.sent = sent
        if head:
            self.connection.sendall(head)  # the body was empty, or cut before its first piece
        if limit is not None and sent >= limit:
            if reply.cut == "stall":
                self.server.stopping.wait(self.server.stall_release())
            self._reset()
            return False
        return True

    def _reset(self) -> None:
        """Close the connection with a TCP RST instead of an orderly FIN."""
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # detach() so that a later close of the socket object cannot send a FIN first.
            os.close(self.connection.detach())
        except OSError:
            pass  # the client is gone already
