"""The download node: ``GET|HEAD /download/{id}?u=…`` with byte ranges and armed faults.

The node needs no API token: the ``u`` query value authenticates the URL.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from urllib.parse import quote, urlencode

from putio_mirror.fakeputio.content import Content
from putio_mirror.fakeputio.faults import FaultBook, NodeFault
from putio_mirror.fakeputio.replies import Reply, error_reply, html_reply, text_reply
from putio_mirror.fakeputio.wire import Incoming
from putio_mirror.fakeputio.world import World

_PATH = re.compile(r"/download/(\d+)")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class RangeNotSatisfiable(Exception):
    """The requested range starts at or after the end of the file."""


def respond(world: World, faults: FaultBook, incoming: Incoming) -> Reply:
    """Given a node request, return the file's bytes, a range of them, or an error."""
    match = _PATH.fullmatch(incoming.path)
    if match is None:
        return error_reply(404, "NotFound", "Not found")
    if incoming.method not in ("GET", "HEAD"):
        return error_reply(405, "MethodNotAllowed", "Method not allowed")
    file_id = int(match[1])
    with world.lock:
        refusal = _refusal(world, file_id, incoming.query.get("u", ""))
        if refusal is not None:
            return refusal
        fault = faults.take_node(file_id)
        if fault is not None and fault.status is not None:
            return html_reply(fault.status)
        if fault is not None and fault.redirect:
            return _redirect(incoming)
        item = world.tree.get(file_id)
        if item is None or item.content is None:
            return error_reply(404, "NotFound", "File not found")
        link = world.link(incoming.query.get("u", ""))
        assert link is not None
        link.uses += 1
        wanted = None if world.settings.node_ignores_range else incoming.headers.get("Range")
        reply = _content_reply(item.name, item.content, wanted, fault)
        _pace(reply, world.settings.node_bytes_per_second)
        return reply


def _refusal(world: World, file_id: int, token: str) -> Reply | None:
    link = world.link(token)
    if link is None or link.file_id != file_id:
        return error_reply(403, "Forbidden", "This download link is not valid")
    max_uses = world.settings.url_max_uses
    if max_uses is not None and link.uses >= max_uses:
        return error_reply(410, "LINK_EXPIRED", "This download link has expired")
    return None


def _redirect(incoming: Incoming) -> Reply:
    """Given a node request, send the client to the same URL again (as a node handing a
    request to another would): a client follows it, or fails as it fails a redirect."""
    query = urlencode(incoming.query)
    reply = text_reply(302, "Found")
    reply.headers.append(("Location", f"{incoming.path}?{query}" if query else incoming.path))
    return reply


def _content_reply(
    name: str, content: Content, header: str | None, fault: NodeFault | None
) -> Reply:
    size = content.size
    try:
        wanted = byte_range(header, size)
    except RangeNotSatisfiable:
        reply = text_reply(416, "Requested Range Not Satisfiable")
        reply.headers.append(("Content-Range", f"bytes */{size}"))
        return reply
    start, end = wanted if wanted is not None else (0, size)
    headers = [
        ("Content-Type", "application/octet-stream"),
        ("Accept-Ranges", "bytes"),
        ("Content-Disposition", f"attachment; filename*=UTF-8''{quote(name, safe='')}"),
    ]
    if wanted is not None:
        headers.append(("Content-Range", f"bytes {start}-{end - 1}/{size}"))
    reply = Reply(206 if wanted else 200, headers=headers, length=end - start)
    reply.stream = lambda: content.pieces(start, end)
    _arm_cut(reply, fault)
    return reply


def _arm_cut(reply: Reply, fault: NodeFault | None) -> None:
    if fault is None:
        return
    if fault.folded_header:
        reply.headers.append(("X-Fake-Folded", "one\r\n two"))
    if fault.stall_after is not None:
        reply.cut_after, reply.cut = fault.stall_after, "stall"
    elif fault.reset_after is not None:
        reply.cut_after, reply.cut = fault.reset_after, "reset"


def _pace(reply: Reply, rate: float | None) -> None:
    """Given a reply and a rate in bytes per second (None: no cap), send its body no faster."""
    stream = reply.stream
    if stream is None or not rate:
        return
    reply.stream = lambda: paced(stream(), rate)


#: a slow node's bytes come about this often, as a real one's trickle: never a burst of
#: a whole piece and then a long silence, which a client would take for a stall
_TRICKLE_SECONDS = 0.05


def paced(pieces: Iterator[bytes], rate: float) -> Iterator[bytes]:
    """Given body pieces and a rate in bytes per second, yield them no faster than that,
    in bits of at most ``_TRICKLE_SECONDS`` worth of bytes."""
    start, sent = time.monotonic(), 0
    most = max(1, int(rate * _TRICKLE_SECONDS))
    for piece in pieces:
        for offset in range(0, len(piece), most):
            bit = piece[offset : offset + most]
            yield bit
            sent += len(bit)
            ahead = sent / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Given a Range header and a file size, return the half-open range to send.

    Return None when the whole file is to be sent (no header, a syntax the
    node ignores, or several ranges); raise RangeNotSatisfiable if the range
    starts at or after the end of the file.
    """
    match = _RANGE.fullmatch((header or "").strip())
    if match is None or not (match[1] or match[2]):
        return None
    if not match[1]:
        suffix = int(match[2])
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(0, size - suffix), size
    start = int(match[1])
    end = int(match[2]) + 1 if match[2] else max(size, start + 1)
    if end <= start:
        return None  # last byte before first: invalid, so the header is ignored
    if start >= size:
        raise RangeNotSatisfiable
    return start, min(end, size)
