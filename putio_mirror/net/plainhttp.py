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

import functools
import http.client
import socket
import struct
import sys
import time
import weakref
from collections.abc import Iterator, Mapping
from typing import Any, Final

import urllib3
from urllib3.connection import HTTPConnection

from putio_mirror.net import waits
from putio_mirror.net.cutting import Cover, Cutter


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


def read_head(sock: socket.socket, room: int, stored: bytearray | None = None) -> Head:
    """Given a socket a GET was sent on and the bytes of body expected at most (``room``),
    read the answer's status line and headers (the wait counted in ``waits``), into
    ``stored`` if it is long enough (``room_for``), else into a buffer of its own."""
    began = time.monotonic()
    try:
        return _read_head(sock, room, stored)
    finally:
        waits.add(time.monotonic() - began)


def room_for(body: int) -> int:
    """Given the bytes of body expected at most, return the length of a buffer that holds
    the answer: its head, the body and one byte more (a longer body shows)."""
    return HEAD_ROOM + body + 1


def _read_head(sock: socket.socket, room: int, stored: bytearray | None) -> Head:
    if stored is None or len(stored) < room_for(room):
        stored = bytearray(room_for(room))
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
