"""A GET spoken by hand on a connection of a urllib3 pool: the plainest answers only.

A GET through urllib3 costs ~0.4 ms of CPU (a ``Retry`` and a ``Timeout`` object, the
request written header by header, the answer's headers parsed by the ``email`` package, a
liveness ``poll`` and two ``settimeout`` system calls): as much as the rest of a small
file's fetch, and a small file makes two (its link from the API, its bytes from a node).
Written and read by hand it costs a tenth of that (issue 14). Only the plainest answer is
read here: a status line, headers, a body framed by ``Content-Length``. The connection
itself is urllib3's, taken from and given back to the pool requests would use
(``Session.direct_pool``: no proxy applies), so it is made, and for HTTPS verified, exactly
as before, and requests' own GETs share it.

What this reader does not handle (a redirect, a chunked or unknown-encoded body, an
informational answer, a header folded over lines, a target that is not plain ASCII, a
connection class of another kind) is ``NOT_MINE``: the caller asks again the usual way.
The callers map the exceptions raised here (``OSError``, ``http.client.HTTPException``,
urllib3's) as they map urllib3's own.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import socket
import struct
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

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


class NotMine:
    """The answer (or the request) is not one read here: ask again the usual way."""


NOT_MINE: Final = NotMine()

#: the most bytes of status line and headers read before the body
HEAD_ROOM = 16 * 1024
#: answers requests would follow (redirects) or that precede the real one (1xx)
_ELSEWHERE = frozenset({301, 302, 303, 307, 308})


class Headers(Mapping[str, str]):
    """An answer's headers, looked up by name whatever its case; repeated headers joined
    with ", ", as urllib3 joins them. ``by_name``: by lowercase name (read here without a
    call each)."""

    __slots__ = ("by_name",)

    def __init__(self, by_name: dict[str, str]) -> None:
        self.by_name = by_name

    def __getitem__(self, name: str) -> str:
        return self.by_name[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_name)

    def __len__(self) -> int:
        return len(self.by_name)

    def get(self, name: str, default: Any = None) -> Any:
        return self.by_name.get(name.lower(), default)


class Head:
    """An answer's status line and headers, read; the body's first bytes in ``stored``."""

    __slots__ = ("closes", "got", "headers", "reason", "start", "status_code", "stored")

    def __init__(
        self,
        status: int,
        reason: str,
        headers: Headers,
        closes: bool,
        stored: bytearray,
        start: int,
        got: int,
    ) -> None:
        self.status_code = status
        self.reason = reason
        self.headers = headers
        self.closes = closes  # the node closes the connection after this answer
        self.stored, self.start, self.got = stored, start, got  # the body is stored[start:]

    def plain(self, encodings: frozenset[str]) -> bool:
        """Whether this answer is read here: final, framed by one Content-Length, in one of
        ``encodings``."""
        fields = self.headers.by_name
        return (
            self.status_code >= 200
            and self.status_code not in _ELSEWHERE
            and "transfer-encoding" not in fields
            and fields.get("content-encoding", "identity").lower() in encodings
            and fields.get("content-length", "").isdigit()
        )

    @property
    def length(self) -> int:
        return int(self.headers.by_name["content-length"])


def request_bytes(
    pool: urllib3.HTTPConnectionPool, target: str, headers: Mapping[str, str]
) -> bytes | None:
    """Given a pool, a request target and headers, return the GET as http.client writes it
    (``Host`` first, as it computes it); None if anything in it is not plain ASCII."""
    rest = _after_target(
        pool.host, pool.port, pool.ConnectionCls.default_port, tuple(headers.items())
    )
    if rest is None or not target.isprintable() or " " in target or not target.isascii():
        return None  # a line break or a control character: http.client refuses it, let it
    return b"GET " + target.encode("ascii") + rest


@functools.lru_cache(maxsize=64)
def _after_target(
    host: str, port: int | None, default_port: int | None, headers: tuple[tuple[str, str], ...]
) -> bytes | None:
    """Given a pool's host, port and default port and a request's headers, return what
    follows a GET's target: the same for every request to a host (one run: a few hosts,
    the same headers); None if anything in it is not plain ASCII."""
    host = f"[{host}]" if ":" in host else host  # an IPv6 literal
    if port is not None and port != default_port:
        host = f"{host}:{port}"
    lines = [f"Host: {host}"] + [f"{name}: {value}" for name, value in headers]
    if not all(line.isprintable() for line in lines):
        return None  # a line break or a control character: http.client refuses it, let it
    text = " HTTP/1.1\r\n" + "\r\n".join(lines) + "\r\n\r\n"
    return text.encode("ascii") if text.isascii() else None


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


class Loan:
    """A connection borrowed from a pool for one GET, given back when the ``with`` block
    ends, closed first unless the borrower set ``kept``: the answer was read to its end
    and the connection may serve the next one. ``conn`` is None for a connection of a
    class not known here (left alone). Given a ``cutter``, the socket ``watch`` is
    given is cut short by it until the loan ends, and so is the connect of a connection
    not connected yet (``Cover``: only then, as a request on a kept connection, most of
    a small file's, would pay ~3 µs of CPU for it)."""

    __slots__ = ("_cover", "_cutter", "_pool", "_taken", "_watched", "conn", "kept")

    def __init__(self, pool: urllib3.HTTPConnectionPool, cutter: Cutter | None = None) -> None:
        self._pool = pool
        self._cutter = cutter
        self._cover: Cover | None = None
        self._watched: socket.socket | None = None
        self._taken: Any = None
        self.conn: HTTPConnection | None = None
        self.kept = False

    def watch(self, sock: socket.socket) -> socket.socket:
        """Given the connection's socket, let the cutter cut its reads; return it."""
        if self._cutter is not None:
            self._cutter.watch(sock)
            self._watched = sock
        return sock

    def __enter__(self) -> Loan:
        self._taken = taken = self._pool._get_conn()  # the connection requests' GET would take
        self.conn = conn = taken if isinstance(taken, HTTPConnection) else None
        if self._cutter is not None and conn is not None and conn.sock is None:
            self._cover = Cover(self._cutter).__enter__()  # ``send`` connects it
        return self

    def __exit__(self, *_: object) -> None:
        if self._cover is not None:
            self._cover.__exit__()
        if self._watched is not None and self._cutter is not None:
            self._cutter.forget(self._watched)
        if self._cutter is not None:
            self.kept = self.kept and not self._cutter.done  # a cut socket serves no more
        if self.conn is not None and not self.kept:
            self.conn.close()  # the pool makes a new one for the next request
        self._pool._put_conn(self._taken)


def send(conn: HTTPConnection, request: bytes, timeout: tuple[float, float]) -> socket.socket:
    """Given a connection, a request and the (connect, read) timeouts, send the request,
    connecting first if need be (urllib3's connect: its socket options, TLS verified as
    requests asks); return the socket, ready to read within the read timeout (a read
    that times out raises TimeoutError)."""
    if conn.sock is None:
        conn.timeout = timeout[0]
        conn.connect()
    sock = conn.sock
    assert sock is not None  # connected
    _wait_at_most(sock, timeout[1])
    try:
        sock.sendall(request)
    except BlockingIOError as exc:  # SO_SNDTIMEO ran out (``_wait_at_most``)
        raise TimeoutError("timed out") from exc
    return sock


#: the plain sockets left blocking, each with the read timeout its kernel enforces
_KERNEL_TIMED: weakref.WeakKeyDictionary[socket.socket, float] = weakref.WeakKeyDictionary()
#: a ``struct timeval`` of two native longs: so on 64-bit Linux and macOS; elsewhere the
#: sockets keep Python's timeout
_TIMEVAL = "@ll" if struct.calcsize("@l") == 8 and sys.platform in ("linux", "darwin") else None


def _wait_at_most(sock: socket.socket, seconds: float) -> None:
    """Given a connected socket, make its reads and writes fail within ``seconds``.

    A plain socket is made blocking, the kernel timing it (``SO_RCVTIMEO``,
    ``SO_SNDTIMEO``, set once per socket): with Python's timeout every read is a ``poll``
    and then a ``recv``, two system calls and two GIL handoffs; blocking, one ``recv``,
    and ``MSG_WAITALL`` fills a whole chunk in it (``BodyReader``). A TLS socket keeps
    Python's timeout: its reads try first and ``poll`` only when one would block.
    urllib3 sets its own timeout whenever it uses a connection, and so may leave a socket
    here in either mode."""
    if type(sock) is not socket.socket or _TIMEVAL is None:
        if sock.gettimeout() != seconds:  # each settimeout is a system call
            sock.settimeout(seconds)
        return
    if sock.gettimeout() is not None:
        sock.setblocking(True)
    if _KERNEL_TIMED.get(sock) != seconds:
        whole = int(seconds)
        timeval = struct.pack(_TIMEVAL, whole, max(1, int((seconds - whole) * 1e6)))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
        _KERNEL_TIMED[sock] = seconds


def _recv_into(sock: socket.socket, view: memoryview, flags: int = 0) -> int:
    """Given a socket ``send`` readied, read into ``view``; raise TimeoutError if no byte
    came within the read timeout, whichever mode the socket is in."""
    try:
        # flags only where given: a TLS socket refuses any, and its nbytes means its own
        return sock.recv_into(view, 0, flags) if flags else sock.recv_into(view)
    except BlockingIOError as exc:  # SO_RCVTIMEO ran out (``_wait_at_most``)
        raise TimeoutError("timed out") from exc


def read_head(sock: socket.socket, room: int) -> Head:
    """Given a socket a GET was sent on and the bytes of body expected at most (``room``),
    read the answer's status line and headers."""
    stored = bytearray(HEAD_ROOM + room + 1)  # one more: a longer body shows
    view, got = memoryview(stored), 0
    while True:
        count = _recv_into(sock, view[got:HEAD_ROOM])
        if not count:
            raise http.client.RemoteDisconnected("the remote end closed the connection")
        start = max(0, got - 3)
        got += count
        found = stored.find(b"\r\n\r\n", start, got)
        if found >= 0:
            break
        if got >= HEAD_ROOM:
            raise http.client.LineTooLong("headers")
    lines = stored[:found].decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code, _, reason = rest.partition(" ")
    if not (version.startswith("HTTP/1.") and len(code) == 3 and code.isdigit()):
        raise http.client.BadStatusLine(lines[0])
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon and name == name.strip():  # no folded line (" …"), no space before ":"
            name, value = name.lower(), value.strip()
        else:
            name, value = "transfer-encoding", "unreadable"  # an odd line: not read here
        known = fields.get(name)
        fields[name] = value if known is None else f"{known}, {value}"
    connection = fields.get("connection", "").lower()
    closes = "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection)
    return Head(int(code), reason, Headers(fields), closes, stored, found + 4, got)


def read_body(sock: socket.socket, head: Head, length: int) -> memoryview:
    """Given an answer's head and its body's length (no more than the room it was read
    with), read the rest of the body; return it. Raise IncompleteRead if the connection
    ends before it does."""
    got, end = head.got, head.start + length
    if len(head.stored) <= end:  # more than the room read_head was given
        head.stored.extend(bytes(end + 1 - len(head.stored)))
    view = memoryview(head.stored)
    while got < end:
        count = _recv_into(sock, view[got : end + 1])
        if not count:
            raise http.client.IncompleteRead(bytes(view[head.start : got]), end - got)
        got += count
    head.got = got
    return view[head.start : end]


def reusable(head: Head, length: int) -> bool:
    """Whether the connection may serve the next request after this body: the node keeps
    it open and sent nothing past the body."""
    return not head.closes and head.got == head.start + length


class BodyReader:
    """An answer's body (of ``length`` bytes, framed by its Content-Length), read as it
    comes into the caller's buffers: the bytes read with the head first, then each buffer
    filled in one ``recv`` where the socket allows (``MSG_WAITALL``, a plain socket left
    blocking by ``send``), never past the body.

    A buffer holds what came within the read timeout, if it is not full by then: a node
    that trickles (a few bytes a second, never silent long enough to time out) would
    otherwise keep the reader filling one buffer for hours, and the caller, who asks
    between buffers whether to go on (a download window that closed), waiting for it."""

    __slots__ = ("_ahead", "_flags", "_left", "_patience", "_sock", "reusable")

    def __init__(self, sock: socket.socket, head: Head, length: int) -> None:
        self._sock = sock
        self._left = length
        self._ahead = memoryview(head.stored)[head.start : min(head.got, head.start + length)]
        waits = type(sock) is socket.socket and sock.gettimeout() is None
        self._flags = socket.MSG_WAITALL if waits and hasattr(socket, "MSG_WAITALL") else 0
        #: the read timeout of a socket in Python's hands (the kernel times a MSG_WAITALL
        #: read: it comes back short once the timeout ran out)
        self._patience = sock.gettimeout()
        #: whether the connection may serve the next request once the body is read: the
        #: node keeps it open and sent nothing past the body with the head
        self.reusable = not head.closes and head.got <= head.start + length

    @property
    def done(self) -> bool:
        """Whether the whole body was read."""
        return self._left == 0

    def readinto(self, view: memoryview) -> int:
        """Given a buffer, fill it with the body's next bytes (fewer only at its end);
        return how many, 0 once the body was read. Raise IncompleteRead if the connection
        ends first, TimeoutError if no byte came within the read timeout."""
        want = min(len(view), self._left)
        got = min(want, len(self._ahead))
        if got:
            view[:got] = self._ahead[:got]
            self._ahead = self._ahead[got:]
        # (no clock read for a MSG_WAITALL read: the kernel times it)
        deadline = None if self._flags or self._patience is None else self._patience
        if deadline is not None:
            deadline += time.monotonic()
        while got < want:
            count = _recv_into(self._sock, view[got:want], self._flags)
            if not count:
                raise http.client.IncompleteRead(bytes(view[:got]), want - got)
            got += count
            if got < want and self._waited_enough(deadline):
                break
        self._left -= got
        return got

    def _waited_enough(self, deadline: float | None) -> bool:
        """Given when this buffer's read timeout runs out (None: never), say whether a
        buffer not full yet is to be handed over as it is: a MSG_WAITALL read came back
        short (its timeout ran out, or a signal came), or the timeout passed."""
        if self._flags:
            return True
        return deadline is not None and time.monotonic() >= deadline
