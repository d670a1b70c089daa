"""What a run opens before it observes: its journal (an existing one only, for a dry run),
once it is found in a place SQLite can keep it, the files an earlier version left in
staging, and the recording of an early end."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from putio_mirror.config.settings import Settings
from putio_mirror.core.attention import SEVERAL_HOSTS, Attention, shared_journal
from putio_mirror.core.errors import ExitCode, JournalError, MirrorError
from putio_mirror.core.state import JournalFacts
from putio_mirror.journal.peek import peek_facts
from putio_mirror.journal.where import plain_sqlite_file, surely_missing_file
from putio_mirror.journal.writers import Writer, writers
from putio_mirror.local.folders import default_journal
from putio_mirror.local.mounts import Mount, shared_filesystem
from putio_mirror.local.staging import LEGACY_ITEMS_DIR, adopt_legacy_items, return_moved_files

if TYPE_CHECKING:  # imported where used: a dry run needs no SQLAlchemy, if new
    from putio_mirror.journal.store import Journal

log = logging.getLogger(__name__)
#: how the summary of a run that ended before its plan begins (the why follows)
EARLY_END = "ended before its plan: "


class EarlyEnd:
    """Until the executor gives the run a row of its own, an error or Ctrl-C that ends it
    is recorded as a run too: a refused token, put.io unreachable or a safety limit belongs
    in ``history`` and ``status``, not only on a screen nobody reads at night.

    Dry runs record nothing, nor does a watcher's blackhole pass (it would record every
    few seconds through an outage; its periodic sync is recorded)."""

    def __init__(
        self, clock: Callable[[], datetime], command: str, journal: Journal | None
    ) -> None:
        """``journal`` is None for a run that records nothing."""
        self._clock = clock
        self._started = clock().astimezone(UTC)
        self._command = command
        self._journal = journal
        #: set once the executor takes over: it records the run itself
        self.handed_over = False

    def __enter__(self) -> EarlyEnd:
        return self

    def __exit__(self, kind: object, error: BaseException | None, trace: object) -> None:
        if self.handed_over or error is None or self._journal is None:
            return
        if isinstance(error, MirrorError):
            code, why = error.exit_code, error.message
        elif isinstance(error, KeyboardInterrupt):
            code, why = ExitCode.INTERRUPTED, "interrupted"
        else:
            code, why = ExitCode.BUG, f"crashed ({type(error).__name__})"
        try:
            run_id = self._journal.start_run(self._command, self._started)
            ended = self._clock().astimezone(UTC)
            self._journal.finish_run(run_id, ended, int(code), f"{EARLY_END}{why}")
        except MirrorError as trouble:  # never hide the error that ended the run
            log.warning("could not record the run in the journal: %s", trouble)


#: how lately another host must have written a SQLite journal on a share, since this host
#: did, for a run to refuse it: hosts taking turns on one SQLite file over a share
TURNS_WITHIN = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class JournalPlace:
    """A writing command's journal, its place checked (``journal_place``): what
    ``open_journal`` takes, so that every command that writes the journal (a run,
    ``transfers retry`` and ``dismiss``, ``serve``'s Transmission door) is checked alike."""

    url: str
    #: what needs a person about where it is: said once by the command, exit 11
    attention: tuple[Attention, ...]


def journal_place(settings: Settings, now: datetime) -> JournalPlace:
    """Given a writing command's settings and the time, return its journal's place, with
    what needs a person about it: a SQLite journal on a network share or a FUSE
    filesystem, whose locks and shared memory SQLite's WAL cannot trust (the command goes
    on: one host's journal there may well work, and moving it is a person's choice).

    Raise JournalError, before anything writes it, if another host wrote it since this
    host last did, within ``TURNS_WITHIN``: two hosts writing one SQLite file over a share
    is how it gets corrupted. A host that never wrote it takes it over (a new Pi, after
    the old one's SD card died, or a container made anew under another name), and so
    does any a day after the other's last run."""
    return JournalPlace(settings.journal_url, _place_attention(settings.journal_url, now))


def _place_attention(url: str, now: datetime) -> tuple[Attention, ...]:
    database = plain_sqlite_file(url)
    if database is None:
        return ()
    # the file, not its folder: SQLite follows a link to it and keeps its -wal beside the target
    mount = shared_filesystem(database.absolute())
    if mount is None:
        return ()
    other = other_writer(writers(database), socket.gethostname(), now)
    if other is not None:
        raise _taking_turns(database, mount, other)
    return (described(database, mount),)


def described(database: Path, mount: Mount) -> Attention:
    """Given a SQLite journal's file and the share that holds it, say what is wrong."""
    network = mount.sharing == "network"
    return shared_journal(str(database), mount.describe(), network, str(default_journal()))


def other_writer(found: Sequence[Writer], here: str, now: datetime) -> Writer | None:
    """Given the hosts that wrote a journal, this host's name and the time, return the
    host that wrote it last since this one did, within ``TURNS_WITHIN``; None if none
    did, or this host never wrote it."""
    mine = max((writer.last_run for writer in found if writer.host == here), default=None)
    if mine is None:
        return None
    since = [
        writer
        for writer in found
        if writer.host != here and writer.last_run > mine and now - writer.last_seen < TURNS_WITHIN
    ]
    return max(since, key=lambda writer: writer.last_run, default=None)


def _taking_turns(database: Path, mount: Mount, other: Writer) -> JournalError:
    seen = other.last_seen.astimezone()
    again = (other.last_seen + TURNS_WITHIN).astimezone()
    return JournalError(
        f"the journal {database} is on {mount.describe()}, and host {other.host} wrote it "
        f"since this host last did (at {seen:%Y-%m-%d %H:%M}): two hosts writing one SQLite "
        "file over a share corrupt it; this run changed nothing",
        f"{SEVERAL_HOSTS}; or give each host a SQLite journal of its own on a local "
        f"disk (paths.journal: {default_journal()}, the default); or stop putio-mirror "
        f"on {other.host}: a day after its last run ({again:%Y-%m-%d %H:%M}) this host "
        "may write this one again",
    )


@contextmanager
def open_journal(place: JournalPlace) -> Iterator[Journal]:
    """Given a journal's place, checked, open it to write (creating it if new); close it
    after."""
    from putio_mirror.journal.store import Journal

    journal = Journal.open(place.url)
    try:
        yield journal
    finally:
        journal.close()


@contextmanager
def existing_journal(settings: Settings) -> Iterator[Journal | None]:
    if surely_missing_file(settings.journal_url):
        yield None
        return
    from putio_mirror.journal.store import Journal

    journal = Journal.open_existing(settings.journal_url)
    try:
        yield journal
    finally:
        if journal is not None:
            journal.close()


@contextmanager
def existing_facts(settings: Settings) -> Iterator[Callable[[], JournalFacts]]:
    """A dry run's way to the journal's facts. A dry run changes nothing, so creates no
    journal: a missing one knows nothing. A SQLite journal at the current schema is read
    through sqlite3 alone (``peek_facts``: no SQLAlchemy to import), one of an older schema
    from an upgraded copy (``journal/older.py``: it stays as it is); any other is opened
    as ever, which says what is wrong with it or reads it the typed way."""
    peeked = peek_facts(settings.journal_url)
    if peeked is not None:
        yield lambda: peeked
        return
    if _surely_empty_file(settings.journal_url):  # opening it would write the tables in
        yield JournalFacts
        return
    if not surely_missing_file(settings.journal_url):  # else no SQLAlchemy to import
        from putio_mirror.journal.older import older_journal_facts

        older = older_journal_facts(settings.journal_url)
        if older is not None:
            yield lambda: older
            return
    with existing_journal(settings) as journal:
        yield journal.facts if journal is not None else JournalFacts


def _surely_empty_file(url: str) -> bool:
    """Given a journal URL, say whether it is plainly a SQLite file of no bytes: SQLite
    takes one for an empty database (``touch``, a first run killed before its first
    commit), which knows nothing."""
    database = plain_sqlite_file(url)
    if database is None:
        return False
    wal = database.with_name(database.name + "-wal")  # its commits may wait there
    try:
        return database.stat().st_size == 0 and (not wal.exists() or wal.stat().st_size == 0)
    except OSError:
        return False


def adopt_legacy_staging(settings: Settings, journal: Journal) -> None:
    """Hand files that an earlier version left in staging's ``items/``, and those a build
    without hard links left in ``building/`` (a run died placing their item), back to the
    engine (as verified, not placed), so they are placed whole and never stranded."""
    return_moved_files(settings.staging_dir)
    if not (settings.staging_dir / LEGACY_ITEMS_DIR).is_dir():
        return
    verified = {
        record.relative_path: file_id
        for file_id, record in journal.facts().downloads.items()
        if record.is_verified and record.relative_path
    }
    moved = adopt_legacy_items(settings.staging_dir, verified)
    journal.forget_placement(moved)
    if moved:
        log.info("took over %d verified files an earlier version left in staging", len(moved))
