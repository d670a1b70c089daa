"""HTTP plumbing: one threading HTTP/1.1 server per logical host on 127.0.0.1.

Each server tracks its open connections and handler threads so that stopping
is quick even while a client sits on a keep-alive or a stalled download.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from putio_mirror.fakeputio.replies import Reply

_log = logging.getLogger(__name__)


class HeaderMap(Mapping[str, str]):
    """Headers as received: iteration keeps their casing, lookups ignore it."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._values: dict[str, str] = {}
        self._names: dict[str, str] = {}
        for name, value in pairs:
            original = self._names.setdefault(name.lower(), name)
            previous = self._values.get(original)
            self._values[original] = value if previous is None else f"{previous}, {value}"

    def __getitem__(self, name: str) -> str:
        return self._values[self._names.get(name.lower(), name)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"HeaderMap({self._values!r})"


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
        self.body_bytes_sent = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> None:
        self._serving = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._serving.start()

    def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, cut every open connection, and wait for handler threads."""
        if self._serving is not None:
            self.shutdown()  # waits for serve_forever, so only when it was started
        with self._lock:
            connections, threads = list(self._connections), list(self._handler_threads)
        for connection in connections:
            _shut(connection)
        for thread in threads:
            thread.join(grace)
        self.server_close()
        if self._serving is not None:
            self._serving.join(grace)

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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, the client's delayed ACK
    # would hold every small answer back by ~40 ms.
    disable_nagle_algorithm = True
    server: HostServer

    def handle(self) -> None:
        if self.server.refuse():
            self._reset()
            return
        try:
            super().handle()
        except OSError:
            self.close_connection = True

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s: " + format, self.server.label, *args)

    def _serve(self) -> None:
        if self.server.refuse():
            self._reset()  # an outage also hits connections kept alive from before it
            return
        split = urlsplit(self.path)
        incoming = Incoming(
            host=self.server.label,
            method=self.command,
            path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers=HeaderMap(self.headers.items()),
            body=self._read_body(),
        )
        self._send(self.server.respond(incoming))

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _send(self, reply: Reply) -> None:
        delay = reply.delay + self.server.latency()
        if delay:
            self.server.stopping.wait(delay)
        if reply.reset:
            self._reset()
            return
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(reply.content_length()))
        self.end_headers()
        if self.command != "HEAD":
            self._write_body(reply)

    def _write_body(self, reply: Reply) -> None:
        limit, sent = reply.cut_after, 0
        for piece in reply.pieces():
            if limit is not None and sent + len(piece) >= limit:
                self.wfile.write(piece[: limit - sent])
                self.server.count_sent(limit - sent)
                sent = reply.sent = limit
                break
            self.wfile.write(piece)
            self.server.count_sent(len(piece))
            sent += len(piece)
            reply.sent = sent
        if limit is not None and sent >= limit:
            if reply.cut == "stall":
                self.server.stopping.wait(self.server.stall_release())
            self._reset()

    def _reset(self) -> None:
        """Close the connection with a TCP RST instead of an orderly FIN."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # detach() so that a later close of the socket object cannot send a FIN first.
            os.close(self.connection.detach())
        except OSError:
            pass  # the client is gone already
