"""The cutting of a run's connections: reads, connects and TLS handshakes in flight ended
at once when the run stops (a stop, a window's end, a fatal error, the run's end).

A ``Cutter`` holds the sockets it may cut; a ``Cover`` (``cut_by``) is one thread's request
cut by the cutters around it, whichever way it goes: read by hand (``plainhttp.Loan``),
through urllib3, through requests. urllib3's connections and pools of the session
(``CUT_POOLS``, ``sessions.py``) look for the thread's cover: each socket they connect is
watched from before its connect, and each one they reuse while it is covered.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final, TypeVar

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import (
    ConnectTimeoutError,
    LocationParseError,
    NameResolutionError,
    NewConnectionError,
)
from urllib3.util.connection import allowed_gai_family
from urllib3.util.timeout import _DEFAULT_TIMEOUT

if TYPE_CHECKING:
    from urllib3._base_connection import BaseHTTPConnection
    from urllib3.util.connection import _TYPE_SOCKET_OPTIONS
    from urllib3.util.timeout import _TYPE_TIMEOUT


class Cutter:
    """The sockets of the reads in flight that a stop may cut short (thread-safe).

    A read waits on a silent node until its read timeout (a minute by default), and a
    signal interrupts only the main thread's read, which Python then takes up again: a
    window's end or a SIGTERM would wait that long. ``cut`` shuts every socket watched
    (its reads end at once, as a failed connection) and every one watched after it: a
    run's reads that outlive its stop by a moment, never a healthy read's hot loop (one
    lock a request, no system call)."""

    __slots__ = ("_lock", "_watched", "done")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watched: set[socket.socket] = set()
        #: whether ``cut`` was called: what a read cut short tells nothing of a node
        self.done = False

    def watch(self, sock: socket.socket) -> None:
        """Given the socket of a read about to start, cut it when the rest are (at once,
        if they were)."""
        with self._lock:
            if self.done:
                _shut(sock)
            else:
                self._watched.add(sock)

    def forget(self, sock: socket.socket) -> None:
        """Given a watched socket, no longer cut it: called before it is closed, so a cut
        never reaches a descriptor number used again by another file."""
        with self._lock:
            self._watched.discard(sock)

    def cut(self) -> None:
        """End every read watched, now and from now on."""
        with self._lock:
            self.done = True
            for sock in self._watched:
                _shut(sock)
            self._watched.clear()


def _shut(sock: socket.socket) -> None:
    # the socket's own shutdown, not a TLS one's (which drops its TLS state under a
    # reader in another thread): the descriptor's reads end, the reader raises
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


#: the ``Cover`` of the request this thread makes, if a cutter is to cut it
_here = threading.local()


class Cover:
    """One thread's request, cut short by ``cutter`` whichever way it goes (read by hand,
    through urllib3, through requests following a redirect) while the ``with`` block
    lasts: the sockets its connections connect, watched from before their connect (a node
    that never answers a SYN would hold a stop for the connect timeout; a socket shut down
    ends its connect at once, as a failed one), and those they reuse (``CutHTTPConnection``
    and its pools look for the cover). Each is forgotten when the block ends, or when its
    connection closes first. One lookup a request and a lock a socket: no system call.

    A cover entered inside another (an API call, covered by the client's stop, for a
    download's link, covered by the run's downloads) cuts its request with the cutters of
    every cover around it as well: each has a say over the request."""

    __slots__ = ("_cutters", "_outer", "_watched")

    def __init__(self, cutter: Cutter) -> None:
        self._cutters: tuple[Cutter, ...] = (cutter,)
        self._outer: Cover | None = None
        self._watched: list[socket.socket] = []

    @property
    def cut(self) -> bool:
        """Whether a cutter cut: what failed meanwhile tells nothing of a node."""
        return any(cutter.done for cutter in self._cutters)

    @property
    def cutters(self) -> tuple[Cutter, ...]:
        """Every cutter that has a say over the request: its own, then those around it."""
        return self._cutters

    def __enter__(self) -> Cover:
        self._outer = outer = getattr(_here, "cover", None)
        if outer is not None:
            own = self._cutters[0]
            self._cutters = (own, *(cutter for cutter in outer._cutters if cutter is not own))
        _here.cover = self
        return self

    def __exit__(self, *_: object) -> None:
        _here.cover = self._outer
        for sock in self._watched:
            self.forget(sock)
        self._watched.clear()
        self._cutters = self._cutters[:1]

    def watch(self, sock: socket.socket) -> None:
        """Given a socket of the request (connected or not), cut it with the rest (at
        once, if they were)."""
        for cutter in self._cutters:
            cutter.watch(sock)
        self._watched.append(sock)

    def forget(self, sock: socket.socket) -> None:
        """Given a socket about to be closed, no longer cut it."""
        for cutter in self._cutters:
            cutter.forget(sock)


def _cover() -> Cover | None:
    """The cover of this thread's request, if any."""
    return getattr(_here, "cover", None)


def cut_here() -> bool:
    """Whether this thread's request is covered and was cut: what it failed of tells
    nothing of the host it asked."""
    cover = _cover()
    return cover is not None and cover.cut


_Made = TypeVar("_Made")


def cut_by(cutters: Sequence[Cutter], call: Callable[[], _Made]) -> _Made:
    """Given cutters (maybe none) and a call, make the call on this thread, its requests
    cut short by each of them (``Cover``): what a call hands to a thread of its own (the
    next page of a listing) is cut with it (``covering``). A connection the call gives
    back to its pool stays watched until the call returns: a cutter that cuts only once
    its owner is done with the pool (a run's end) cuts nobody else's request."""
    with contextlib.ExitStack() as covers:
        for cutter in reversed(cutters):  # the innermost first in the cover's own
            covers.enter_context(Cover(cutter))
        return call()


def covering() -> tuple[Cutter, ...]:
    """The cutters of this thread's request (none if it is not covered), to hand on to a
    thread that works for it."""
    cover = _cover()
    return () if cover is None else cover.cutters


def _connect_covered(conn: HTTPConnection, cover: Cover) -> socket.socket:
    """Given a connection about to connect and its request's cover, connect its socket as
    urllib3's ``_new_conn`` does (the same options, timeout, source address, errors), the
    socket watched from before its connect: a cut ends the connect at once."""
    try:
        sock = _create_connection(
            (conn._dns_host, conn.port),
            conn.timeout,
            conn.source_address,
            conn.socket_options,
            cover,
        )
    except socket.gaierror as exc:
        raise NameResolutionError(conn.host, conn, exc) from exc
    except TimeoutError as exc:
        message = f"Connection to {conn.host} timed out. (connect timeout={conn.timeout})"
        raise ConnectTimeoutError(conn, message) from exc
    except OSError as exc:
        raise NewConnectionError(conn, f"Failed to establish a new connection: {exc}") from exc
    sys.audit("http.client.connect", conn, conn.host, conn.port)
    return sock


def _create_connection(
    address: tuple[str, int],
    timeout: _TYPE_TIMEOUT,
    source_address: tuple[str, int] | None,
    options: _TYPE_SOCKET_OPTIONS | None,
    cover: Cover,
) -> socket.socket:
    """urllib3's ``create_connection``, each socket watched by ``cover`` before its
    connect (and given up at once if it was cut)."""
    host, port = address
    host = host.strip("[]") if host.startswith("[") else host
    try:
        host.encode("idna")
    except UnicodeError:
        raise LocationParseError(f"'{host}', label empty or too long") from None
    error: OSError = OSError("getaddrinfo returns an empty list")
    for family, kind, proto, _, where in socket.getaddrinfo(
        host, port, allowed_gai_family(), socket.SOCK_STREAM
    ):
        try:
            sock = socket.socket(family, kind, proto)
        except OSError as exc:  # (an address family the host lacks: the next address)
            error = exc
            continue
        try:
            for option in options or ():
                sock.setsockopt(*option)
            if timeout is not _DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            cover.watch(sock)
            # (a socket shut down before its connect would connect all the same: asked
            # before and after it, the cut wins)
            if not cover.cut:
                sock.connect(where)
            if cover.cut:
                raise ConnectionAbortedError("the run stopped")
            return sock
        except OSError as exc:
            error = exc
            cover.forget(sock)
            sock.close()
    raise error


class CutHTTPConnection(HTTPConnection):
    """urllib3's connection, cut short by the ``Cover`` of the thread that connects it
    (its connect, then its reads) if there is one; as urllib3's where there is none."""

    def _new_conn(self) -> socket.socket:
        cover = _cover()
        return super()._new_conn() if cover is None else _connect_covered(self, cover)

    def connect(self) -> None:
        super().connect()
        _watch_connected(self)

    def close(self) -> None:
        _forget_closing(self)
        super().close()


class CutHTTPSConnection(HTTPSConnection):
    """``CutHTTPConnection`` for HTTPS, its TLS handshake cut too: urllib3 wraps the
    socket connected in a TLS one of its own (the one watched is left empty), so a twin
    of it (``dup``: the same connection) is watched until the handshake is over. Two
    system calls a new connection, none a request."""

    _twin: socket.socket | None = None

    def _new_conn(self) -> socket.socket:
        cover = _cover()
        if cover is None:
            return super()._new_conn()
        sock = _connect_covered(self, cover)
        try:
            self._twin = twin = sock.dup()
        except OSError as exc:
            sock.close()
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc
        cover.watch(twin)
        return sock

    def connect(self) -> None:
        try:
            super().connect()
        finally:
            twin, self._twin = self._twin, None
            if twin is not None:
                cover = _cover()
                if cover is not None:
                    cover.forget(twin)
                twin.close()  # the connection itself lives on in the TLS socket
        _watch_connected(self)

    def close(self) -> None:
        _forget_closing(self)
        super().close()


def _watch_connected(conn: HTTPConnection) -> None:
    """Given a connection just connected, let this thread's cover cut its socket (for
    HTTPS the TLS one: the one it connected is urllib3's no more)."""
    cover = _cover()
    if cover is not None and isinstance(conn.sock, socket.socket):
        cover.watch(conn.sock)


def _forget_closing(conn: HTTPConnection) -> None:
    """Given a connection about to close, no longer let this thread's cover cut its
    socket: a cut never reaches a descriptor number used again."""
    cover = _cover()
    if cover is not None and isinstance(conn.sock, socket.socket):
        cover.forget(conn.sock)


class CutHTTPConnectionPool(urllib3.HTTPConnectionPool):
    """urllib3's pool of ``CutHTTPConnection``: a connection taken from it while this
    thread has a cover is cut with it."""

    ConnectionCls = CutHTTPConnection

    def _get_conn(self, timeout: float | None = None) -> BaseHTTPConnection:
        return _watch_taken(super()._get_conn(timeout))


class CutHTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    """``CutHTTPConnectionPool`` for HTTPS."""

    ConnectionCls = CutHTTPSConnection

    def _get_conn(self, timeout: float | None = None) -> BaseHTTPConnection:
        return _watch_taken(super()._get_conn(timeout))


#: the pools of a pool manager whose connections a ``Cover`` cuts, by scheme
CUT_POOLS: Final = {"http": CutHTTPConnectionPool, "https": CutHTTPSConnectionPool}


def _watch_taken(conn: BaseHTTPConnection) -> BaseHTTPConnection:
    """Given a connection taken from a pool, let this thread's cover cut its socket if it
    has one already (one it connects is watched as it connects)."""
    cover = _cover()
    sock = getattr(conn, "sock", None)
    if cover is not None and isinstance(sock, socket.socket):
        cover.watch(sock)
    return conn
