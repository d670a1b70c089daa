"""An address on 127.0.0.1 that never answers a connection: a node behind a blackhole.

A host whose packets are dropped (a blackholed IP, a firewall that drops) leaves a client's
SYN unanswered: its connect waits out the connect timeout. Nothing of a test may leave
127.0.0.1, so the same is made on loopback: a listening socket with a backlog of 0, its
one place taken by a connection never accepted; Linux drops every SYN that comes after
(the listener's queue is full), and the client's connect hangs as it would on the real
thing (checked when the address is made).
"""

from __future__ import annotations

import contextlib
import select
import socket

#: how long a filler's connect is given before it counts as hanging (the queue is full)
_HANGS_AFTER = 0.2
#: fillers tried at most before giving up on making the queue full
_MOST_FILLERS = 8


class Unanswering:
    """Given nothing, hold a loopback address whose connections never complete, until
    ``close``; raise RuntimeError where the kernel does not leave them hanging."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self._fillers: list[socket.socket] = []
        try:
            self._fill()
        except BaseException:
            self.close()
            raise

    @property
    def url(self) -> str:
        host, port = self._listener.getsockname()
        return f"http://{host}:{port}"

    def _fill(self) -> None:
        """Connect fillers (never accepted) until one hangs: the listener's queue is full."""
        address = self._listener.getsockname()
        for _ in range(_MOST_FILLERS):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            self._fillers.append(filler)
            filler.connect_ex(address)
            _, writable, _ = select.select([], [filler], [], _HANGS_AFTER)
            if not writable:
                return  # its SYN was dropped: so will the next one's be
        raise RuntimeError("every connection to a full listener completed: no hanging here")

    def close(self) -> None:
        for sock in [*self._fillers, self._listener]:
            with contextlib.suppress(OSError):
                sock.close()
        self._fillers.clear()
