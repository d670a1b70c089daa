"""FakePutio: the fake put.io a test starts, builds a world in, and steers."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from putio_mirror.fakeputio import api, node
from putio_mirror.fakeputio.content import StoredContent, read_all
from putio_mirror.fakeputio.faults import ApiFault, FaultBook, NodeFault, Outage, fault_reply
from putio_mirror.fakeputio.replies import Reply, error_reply
from putio_mirror.fakeputio.transfers import ACTIVE
from putio_mirror.fakeputio.unanswering import Unanswering
from putio_mirror.fakeputio.wire import HostServer, Incoming
from putio_mirror.fakeputio.world import Settings, World

_log = logging.getLogger(__name__)
_MUTATING = frozenset({"POST", "PUT", "DELETE", "PATCH"})
_HOSTS = ("api", "upload", "node")


@dataclass(frozen=True)
class LoggedRequest:
    """One request any fake host received, and the status it answered (0: connection reset).

    ``received_at`` is ``time.monotonic()`` when the request arrived, for tests of pacing;
    ``body_bytes_sent`` how much of the answer's body has gone out so far.
    """

    host: str
    method: str
    path: str
    query: dict[str, str]
    headers: Mapping[str, str]
    body: bytes
    status: int
    received_at: float = 0.0
    sent_so_far: Callable[[], int] = field(default=lambda: 0, compare=False, repr=False)

    @property
    def body_bytes_sent(self) -> int:
        """The body bytes handed to the socket so far (grows while the answer goes out)."""
        return self.sent_so_far()

    @property
    def mutating(self) -> bool:
        """True for a POST/PUT/DELETE/PATCH to the API or upload host."""
        return self.host in ("api", "upload") and self.method in _MUTATING


def _utc_now() -> datetime:
    return datetime.now(UTC)


class FakePutio(Settings):
    """Given a token (and optionally a UTC clock), imitate put.io on three loopback ports.

    Nothing listens until ``start()``; the switches inherited from ``Settings``
    (``url_max_uses``, ``folder_name_prefix``, ``torrent_final_status``,
    ``clean_statuses``, ``upload_unauthorized_text``, ``not_torrent_error_type``,
    ``refused_torrents``,
    ``end_cursor``, ``stall_release_seconds``, ``node_base_url``, ``node_bytes_per_second``,
    ``latency_seconds``, ``node_ignores_range``)
    may be flipped at any time. ``on_request``, if set, is called with every logged request
    before its answer goes out (from the server's thread), e.g. to revoke the token or start
    an outage at an exact moment.
    """

    def __init__(
        self,
        token: str = "test-token",  # noqa: S107 - a test fixture's token
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        super().__init__(token)
        self.world = World(self, now)
        self._faults = FaultBook()
        self._log: list[LoggedRequest] = []
        self._log_lock = threading.Lock()
        self._stopping = threading.Event()
        self._servers: dict[str, HostServer] = {}
        self._unanswering: Unanswering | None = None  # made when a test asks for it
        self.on_request: Callable[[LoggedRequest], None] | None = None

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> FakePutio:
        """Start the API, upload and node servers on ephemeral 127.0.0.1 ports."""
        if self._servers:
            return self
        self._stopping.clear()
        for host in _HOSTS:
            in_outage = functools.partial(self._faults.in_outage, host)
            server = HostServer(host, self._respond, in_outage, self._stopping)
            server.stall_release = lambda: self.stall_release_seconds
            server.latency = lambda: self.latency_seconds
            self._servers[host] = server
        self.world.node_url = self.node_url
        for server in self._servers.values():
            server.start()
        return self

    def stop(self) -> None:
        """Stop all servers, cutting open and stalled connections; safe to call twice."""
        self._stopping.set()
        if self._unanswering is not None:
            self._unanswering.close()
            self._unanswering = None
        servers, self._servers = list(self._servers.values()), {}
        # In parallel: each server waits for its handler threads to end.
        stoppers = [threading.Thread(target=server.stop) for server in servers]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()

    def __enter__(self) -> FakePutio:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def api_url(self) -> str:
        return f"{self._server('api').base_url}/v2"

    @property
    def upload_url(self) -> str:
        return f"{self._server('upload').base_url}/v2"

    @property
    def node_url(self) -> str:
        return self._server("node").base_url

    @property
    def node_bytes_sent(self) -> int:
        """How many body bytes the node has handed to its sockets since ``start()``."""
        return self._server("node").body_bytes_sent

    def _server(self, host: str) -> HostServer:
        if host not in self._servers:
            raise RuntimeError("FakePutio is not started; call start() or use it as a context")
        return self._servers[host]

    # -- building and reading the world --------------------------------------------

    def add_folder(self, name: str, parent_id: int = 0, folder_type: str = "REGULAR") -> int:
        """Given a name and parent folder, add a folder and return its id."""
        with self.world.lock:
            return self.world.add_item(name, parent_id, None, folder_type)

    def add_file(
        self, name: str, parent_id: int = 0, content: bytes | None = None, size: int | None = None
    ) -> int:
        """Given real ``content`` or a ``size`` of generated content, add a file; return its id."""
        with self.world.lock:
            if content is None and size is not None:
                return self.world.tree.add_generated(name, parent_id, size, self.world.stamp())
            return self.world.add_item(name, parent_id, StoredContent(content or b""))

    def hide_file(self, file_id: int) -> None:
        """Given an item id, mark it hidden: listings leave it out unless asked ``hidden=1``."""
        with self.world.lock:
            item = self.world.tree.get(file_id)
            if item is None:
                raise KeyError(f"no file with id {file_id}")
            item.hidden = True

    def rename(self, file_id: int, name: str) -> None:
        """Given an item id and a new name, rename it as the user would on put.io."""
        with self.world.lock:
            item = self.world.tree.get(file_id)
            if item is None or "/" in name or "\0" in name:
                raise KeyError(f"cannot rename {file_id} to {name!r}")
            item.name = name

    def replace_content(self, file_id: int, content: bytes) -> None:
        """Given a file id and bytes, make them the file's content (and CRC32), its id kept:
        a reader in the middle of the old bytes gets the new ones from its next request."""
        with self.world.lock:
            item = self.world.tree.get(file_id)
            if item is None or item.content is None:
                raise KeyError(f"no file with id {file_id}")
            item.content = StoredContent(content)
            item.crc32 = item.content.crc32()
            self.world.tree.resized()

    def delete_file(self, file_id: int) -> None:
        """Given an item id, remove it and its subtree as if the user deleted it."""
        with self.world.lock:
            self.world.tree.delete(file_id)

    def file_content(self, file_id: int) -> bytes:
        """Given a file id, return the exact bytes the node serves (meant for small files)."""
        with self.world.lock:
            item = self.world.tree.get(file_id)
            if item is None or item.content is None:
                raise KeyError(f"no file with id {file_id}")
            return read_all(item.content)

    def file_pieces(self, file_id: int, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Given a file id (and optionally a half-open byte range), yield the exact bytes
        the node serves, in pieces (any size)."""
        with self.world.lock:
            item = self.world.tree.get(file_id)
            if item is None or item.content is None:
                raise KeyError(f"no file with id {file_id}")
            content = item.content
        # A content object never changes (replace_content puts another), so it is read
        # outside the lock.
        stop = content.size if end is None else min(end, content.size)
        return content.pieces(min(start, stop), stop)

    def file_crc32(self, file_id: int) -> str:
        with self.world.lock:
            crc = self.world.file_json(file_id)["crc32"]
            if crc is None:
                raise KeyError(f"{file_id} is a folder")
            return str(crc)

    def file(self, file_id: int) -> dict[str, Any]:
        with self.world.lock:
            return self.world.file_json(file_id)

    def files(self) -> list[dict[str, Any]]:
        """Return every item except the root as put.io file objects, in id order."""
        with self.world.lock:
            return self.world.files_json([item.id for item in self.world.tree.every_item()])

    # -- transfers -----------------------------------------------------------------

    def add_transfer(
        self,
        name: str,
        status: str = "IN_QUEUE",
        file_id: int | None = None,
        source: str | None = None,
        save_parent_id: int = 0,
        **fields: Any,
    ) -> int:
        """Given a name and any transfer fields, add a transfer as if put.io had it; return its id.

        ``type`` defaults to URL for http(s) sources and TORRENT otherwise; a
        SEEDING or COMPLETED transfer gets ``finished_at`` and ``percent_done=100``.
        """
        kind = "URL" if (source or "").lower().startswith(("http:", "https:")) else "TORRENT"
        fields.setdefault("type", kind)
        fields.setdefault("hash", None)
        if status in ("SEEDING", "COMPLETED"):
            fields.setdefault("percent_done", 100)
        with self.world.lock:
            if status in ("SEEDING", "COMPLETED"):
                fields.setdefault("finished_at", self.world.stamp())
            record = self.world.new_transfer(
                name=name, status=status, source=source, save_parent_id=save_parent_id, **fields
            )
            record.file_id = file_id
            return record.id

    def transfer(self, transfer_id: int) -> dict[str, Any]:
        with self.world.lock:
            return self.world.transfer_json(self.world.transfer(transfer_id))

    def transfers(self) -> list[dict[str, Any]]:
        with self.world.lock:
            records = [self.world.transfers[key] for key in sorted(self.world.transfers)]
            return [self.world.transfer_json(record) for record in records]

    def set_transfer(self, transfer_id: int, **fields: Any) -> None:
        """Given a transfer id, overwrite any of its record's fields (status, ratio, ...)."""
        with self.world.lock:
            record = self.world.transfer(transfer_id)
            for key, value in fields.items():
                setattr(record, key, value)

    def tick(self, steps: int = 1) -> None:
        """Move every active transfer ``steps`` states on."""
        with self.world.lock:
            for _ in range(steps):
                self.world.tick()

    def finish_transfers(self) -> None:
        """Drive every active transfer to its final status."""
        self.tick(len(ACTIVE))

    # -- faults --------------------------------------------------------------------

    def inject(
        self,
        path: str = "*",
        status: int = 500,
        times: int = 1,
        retry_after: str | None = None,
        json_body: bool = True,
        reset: bool = False,
        delay: float = 0.0,
        error_type: str | None = None,
        lose_answer: bool = False,
    ) -> None:
        """Given a path (fnmatch pattern, "*" = all), make the next ``times`` API calls fail;
        with ``lose_answer`` they succeed on put.io's side, but the connection is reset
        instead of answering."""
        fault = ApiFault(
            path, times, status, retry_after, json_body, reset, delay, error_type, lose_answer
        )
        self._faults.arm_api(fault)

    def heal(self) -> None:
        """Disarm every API fault ``inject`` armed that is not used up yet."""
        self._faults.disarm_api()

    def refuse_torrent(
        self,
        info_hash: str,
        error_type: str = "NOT_TORRENT",
        message: str = "This torrent is not supported",
    ) -> None:
        """Given an info-hash, answer every upload or magnet of that torrent with put.io's
        400 error envelope carrying ``error_type`` and ``message``."""
        self.refused_torrents[info_hash.lower()] = (error_type, message)

    def node_fault(
        self,
        file_id: int,
        stall_after: int | None = None,
        reset_after: int | None = None,
        status: int | None = None,
        times: int = 1,
        redirect: bool = False,
        folded_header: bool = False,
    ) -> None:
        """Given a file id, make the node stall, reset, answer ``status`` or redirect to
        the same URL (``redirect``) ``times`` times, its bytes with a header folded over
        two lines if ``folded_header``; faults armed for a file are used up in the order
        armed (a redirect, then a stall: the request redirected stalls)."""
        fault = NodeFault(file_id, times, stall_after, reset_after, status, redirect, folded_header)
        self._faults.arm_node(fault)

    def node_unanswering(self, file_id: int, unanswering: bool = True) -> None:
        """Given a file id, make the links handed out for it from now on point at a node
        that never answers a connection (its SYNs dropped, as behind a blackhole:
        ``unanswering.py``), or again at the fake's node (``unanswering=False``)."""
        with self.world.lock:
            if not unanswering:
                self.unanswering_files.discard(file_id)
                return
            if self._unanswering is None:
                self._unanswering = Unanswering()
                self.world.unanswering_url = self._unanswering.url
            self.unanswering_files.add(file_id)

    def link_device(self, code: str | None = None) -> None:
        """Link a device-login code (the newest if None), as the person at put.io/link would."""
        with self.world.lock:
            codes = self.world.device_codes
            codes[code or list(codes)[-1]].linked = True

    def expire_device_code(self, code: str | None = None) -> None:
        """Make a device-login code (the newest if None) answer 404 from now on."""
        with self.world.lock:
            codes = self.world.device_codes
            codes[code or list(codes)[-1]].expired = True

    def revoke_token(self) -> None:
        self.token_revoked = True

    def restore_token(self) -> None:
        """Make the token valid again after ``revoke_token()``."""
        self.token_revoked = False

    def outage(
        self,
        seconds: float,
        clock: Callable[[], float] = time.monotonic,
        hosts: Iterable[str] | None = None,
    ) -> None:
        """Given a duration on ``clock``, reset every connection on every host (or only on
        ``hosts``: "api", "upload", "node") until it passes."""
        only = None if hosts is None else frozenset(hosts)
        self._faults.outage = Outage(clock() + seconds, clock, only)

    # -- request log ---------------------------------------------------------------

    @property
    def requests(self) -> list[LoggedRequest]:
        with self._log_lock:
            return list(self._log)

    def clear_requests(self) -> None:
        with self._log_lock:
            self._log.clear()

    def _respond(self, incoming: Incoming) -> Reply:
        received_at = time.monotonic()
        try:
            reply = self._answer(incoming)
        except Exception:
            _log.exception("fake put.io failed on %s %s", incoming.method, incoming.path)
            reply = error_reply(500, "FAKE_SERVER_BUG", "The fake put.io raised an exception")
        logged = LoggedRequest(
            incoming.host,
            incoming.method,
            incoming.path,
            incoming.query,
            incoming.headers,
            incoming.body,
            0 if reply.reset else reply.status,
            received_at,
            lambda: reply.sent,
        )
        with self._log_lock:
            self._log.append(logged)
        hook = self.on_request
        if hook is not None:
            hook(logged)
        return reply

    def _answer(self, incoming: Incoming) -> Reply:
        if incoming.host == "node":
            return node.respond(self.world, self._faults, incoming)
        fault = self._faults.take_api(incoming.path)
        if fault is not None and fault.lose_answer:
            api.respond(self.world, incoming)
            return Reply(0, reset=True, delay=fault.delay)
        if fault is not None:
            return fault_reply(fault)
        return api.respond(self.world, incoming)
