"""``putio-mirror serve``: the watcher and a Transmission RPC endpoint in one process.

Sonarr, Radarr and ``transmission-remote`` talk to the endpoint; it only writes desires
to the journal and reads the journal and the board. The watcher does the rest as it
does for the blackhole: its passes submit the desires (once by info-hash), its syncs
download and place, and every snapshot they observe refreshes the board.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from putio_mirror.app.opening import journal_place, open_journal
from putio_mirror.cli.signals import StopFlag
from putio_mirror.cli.watch import FETCH, LOOK, Extras, watch_blackhole
from putio_mirror.config.settings import Settings
from putio_mirror.core.errors import ConfigError, ExitCode, MirrorError
from putio_mirror.core.state import FINISHED_STATUSES
from putio_mirror.journal.store import Journal, JournalGoneError
from putio_mirror.rpc.board import STALE_POLLS, Board, is_placed
from putio_mirror.rpc.fields import is_left_out
from putio_mirror.rpc.methods import Door
from putio_mirror.rpc.server import RpcServer

log = logging.getLogger(__name__)


class _Waker:
    """Asks the watcher for a pass (or a sync); a no-op until the watcher hands over how."""

    def __init__(self) -> None:
        self._wake: Callable[[], None] = lambda: None

    def wire(self, wake: Callable[[], None]) -> None:
        self._wake = wake

    def __call__(self) -> None:
        self._wake()


def serve(
    settings: Settings,
    *,
    stop: StopFlag | None = None,
    on_ready: Callable[[RpcServer], None] | None = None,
) -> ExitCode:
    """Given settings, serve until stopped; return the exit code (0 after SIGTERM).

    Raise ConfigError if the endpoint cannot listen where ``rpc.listen`` says; raise
    JournalError, before it listens or opens the journal, if the journal is refused
    where it is (``journal_place``): the door writes desires whenever a client adds one,
    between the watcher's runs, so it is checked as a run's is (what needs a person about
    it is said by the watcher's runs).
    """
    clock = functools.partial(datetime.now, UTC)
    place = journal_place(settings, clock())
    settings.download_dir.mkdir(parents=True, exist_ok=True)
    with open_journal(place) as journal:
        waker, syncer, replanner = _Waker(), _Waker(), _Waker()
        board = Board(
            journal,
            settings.policy,
            sync_soon=syncer,
            clock=clock,
            stale_after=STALE_POLLS * settings.rpc.poll_seconds,
        )
        door = Door(
            journal,
            board,
            settings.download_dir.absolute(),
            settings.rpc,
            settings.policy,
            wake=waker,
            sync_soon=syncer,
            replan=replanner,
            clock=clock,
        )
        server = _listen(door, settings)
        server.start()
        try:
            if on_ready is not None:
                on_ready(server)
            extras = Extras(
                on_snapshot=board.refresh,
                on_unreachable=board.look_failed,
                wire_wake=waker.wire,
                wire_sync=syncer.wire,
                wire_replan=replanner.wire,
                hurry=lambda: _hurry(journal, board),
                hurry_seconds=settings.rpc.poll_seconds,
            )
            return watch_blackhole(
                settings, add_first=True, periodic_sync=True, stop=stop, extras=extras
            )
        finally:
            server.shutdown()
            server.server_close()


def _listen(door: Door, settings: Settings) -> RpcServer:
    try:
        return RpcServer(door, settings.rpc)
    except OSError as error:
        where = f"{settings.rpc.host}:{settings.rpc.port}"
        raise ConfigError(
            f"cannot listen on {where}: {error.strerror}",
            "another program (a Transmission?) may use that port: change rpc.listen",
        ) from None


def _hurry(journal: Journal, board: Board) -> str:
    """FETCH if an RPC item is finished on put.io and not placed yet, LOOK if one is on its
    way, else nothing; one that failed on put.io or here, or whose every file the filters
    leave out, waits for the next sync. Raise JournalGoneError if the journal's file was
    deleted or moved away: the door's every transaction would fail from then on, so serve
    stops (exit 7) and its restart makes a new journal there."""
    try:
        desires = list(journal.desires.listing().values())
        file_ids = [file_id for desire in desires for file_id, _, _ in desire.item_files]
        progress = journal.desires.progress_of(file_ids)
    except JournalGoneError:
        raise
    except MirrorError as error:  # a busy journal: look again next time
        log.warning("serve: %s", error.message)
        return ""
    transfers = board.transfers()
    waiting = [
        transfers.get(desire.info_hash)
        for desire in desires
        if not desire.paused
        and desire.error is None
        and not is_placed(desire, progress)
        and not is_left_out(desire, transfers.get(desire.info_hash))
    ]
    if any(transfer is not None and transfer.status in FINISHED_STATUSES for transfer in waiting):
        return FETCH
    if any(transfer is None or transfer.status != "ERROR" for transfer in waiting):
        return LOOK
    return ""
