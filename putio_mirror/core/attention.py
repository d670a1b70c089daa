"""Problems a run finds that only a person can solve: each is said in the run's output (and
by ``status``), never only in a log line. Pure: given the plan and what was observed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from putio_mirror.core.plan import Plan, RejectBlackholeFile
from putio_mirror.core.state import RemoteFile, Snapshot, Transfer

REMOTE_ROOT_HINT = (
    "set download.remote_root to the number at the end of the folder's address on "
    "app.put.io (0 mirrors the whole account); `putio-mirror doctor` checks it"
)
BLACKHOLE_HINT = (
    "create it, or fix paths.blackhole to the folder the media manager drops .torrent and "
    ".magnet files into (or set transfers.submit_blackhole: false)"
)

#: a file that failed this many times in a row needs a person more than one more retry
KEEPS_FAILING = 3

#: the journal's action kind of what a run found that needs a person (``status`` reads the
#: last sync's): the message its target, the hint its detail
NEEDS_YOU = "needs-you"
#: the journal's detail of a download refused for room on the disk (no failure of its
#: file: the disk's trouble), which the RPC door tells Sonarr until a later try goes on
NO_ROOM = "no-room"
#: the journal's detail of a placement refused for a local file not ours that appeared at
#: a file's path after the plan saw it free; each such file is noted ``NEEDS_YOU`` too,
#: as the plan notes one it finds (``mirroring.in_the_way``), for ``status`` and the RPC door
IN_THE_WAY = "in-the-way"


def noted_key(kind: str, message: str) -> str:
    """Given a kind of noted action and its message, return its journaled key."""
    return f"{kind}:{message}"


@dataclass(frozen=True, slots=True)
class Attention:
    """One thing that needs a person: what, and what to do about it."""

    message: str
    hint: str


def remote_root_problem(files: Iterable[RemoteFile], root_id: int) -> str | None:
    """Given every remote item and ``download.remote_root``, say what is wrong with the
    root (None: it is the account, or a folder put.io listed)."""
    if root_id == 0:
        return None
    for item in files:
        if item.id == root_id:
            if item.is_folder:
                return None
            return f"download.remote_root {root_id} is the file {item.name!r}, not a folder"
    return f"download.remote_root {root_id}: put.io has no such folder"


def missing_blackhole(folder: str) -> Attention:
    """Given the blackhole folder that is not there, return what to say."""
    return Attention(
        f"the blackhole folder {folder} does not exist: nothing was submitted", BLACKHOLE_HINT
    )


def needs_attention(plan: Plan, transfers: Iterable[Transfer]) -> tuple[Attention, ...]:
    """Given the plan and put.io's transfers, return the blackhole files the plan rejects,
    what its notes say needs a person, and the transfers put.io gave up on (in ERROR),
    which this tool leaves alone."""
    rejected = [
        Attention(
            f"blackhole file {action.name} rejected: {action.why}",
            f"it is moved to {_rejected_folder(action.name)} in the blackhole, its reason "
            "beside it in a .why.txt; fetch the .torrent or magnet again",
        )
        for action in plan.actions
        if isinstance(action, RejectBlackholeFile)
    ]
    failed = [
        Attention(
            f"put.io transfer #{transfer.id} {transfer.name} is in ERROR: "
            f"{transfer.error_message or 'put.io gave no reason'}",
            f"`putio-mirror transfers retry {transfer.id}` has put.io try it again; "
            f"`putio-mirror transfers dismiss {transfer.id}` removes it from the list",
        )
        for transfer in sorted(transfers, key=lambda entry: entry.id)
        if transfer.status == "ERROR"
    ]
    told = [Attention(note.message, note.hint) for note in plan.notes if note.level == "needs_you"]
    return (*rejected, *told, *failed)


def _rejected_folder(name: str) -> str:
    """Given a blackhole file's name (``sonarr/x.torrent``), where it is rejected to: its
    own folder's ``.rejected/``."""
    folder = name.rpartition("/")[0]
    return f"{folder}/.rejected/" if folder else ".rejected/"


def failing_files(snapshot: Snapshot) -> tuple[Attention, ...]:
    """Given what was observed, return the files put.io still has that failed at least
    ``KEEPS_FAILING`` times in a row (a verified file's failures start over)."""
    failing = [
        (file_id, record)
        for file_id, record in snapshot.journal.downloads.items()
        if record.failures >= KEEPS_FAILING and not record.is_verified
    ]
    if not failing:  # as nearly always: no need to index 100,000 files
        return ()
    on_putio = {item.id: item for item in snapshot.files if not item.is_folder}
    return tuple(
        Attention(
            f"{record.relative_path or on_putio[file_id].name} keeps failing "
            f"({record.failures} failures): {record.last_error or 'no reason was recorded'}",
            "it is tried again after a pause that doubles each time; `putio-mirror status` "
            "says when; if put.io cannot serve it, fetch the item again there",
        )
        for file_id, record in sorted(failing)
        if file_id in on_putio
    )


#: what SQLite says when a share fails it, as people meet it (Plex's users know them)
_SHARE_SYMPTOMS = "SQLite says 'disk I/O error' or 'database disk image is malformed'"


def shared_journal(database: str, where: str, network: bool, local: str) -> Attention:
    """Given a SQLite journal's file, the filesystem that holds it (``Mount.describe``),
    whether that is a network share (else FUSE), and the default journal's file on a
    local disk, return what to say of it."""
    if network:
        why = (
            "SQLite's WAL (its -shm shared memory) and locks are not kept across hosts "
            "there, so two hosts writing it corrupt it, and a share's locks may fail even "
            "one host's runs"
        )
    else:
        why = (
            "many FUSE filesystems (a mergerfs pool without its page cache, sshfs, rclone) "
            "break the shared memory SQLite's WAL maps (its -shm file)"
        )
    return Attention(
        f"the journal {database} is on {where}: {why} ({_SHARE_SYMPTOMS})",
        f"{shared_journal_hint(local)}; {SEVERAL_HOSTS}",
    )


#: what hosts that would share a journal need (the README tells how)
SEVERAL_HOSTS = "hosts that share one journal need PostgreSQL (README: Several hosts, one journal)"


def shared_journal_hint(local: str) -> str:
    """Given the default journal's file (on a local disk), say where a SQLite journal
    found on a share belongs."""
    return (
        f"keep the SQLite journal on a local disk: set paths.journal to {local} (the "
        "default) and move the file there (with its -wal file, if any) while no run is "
        "on; copy it to the share as a backup if you like"
    )


#: what hosts sharing a journal but placing into folders of their own are told to do
ONE_FOLDER_HINT = (
    "point paths.downloads of every host sharing this journal at one folder (the same "
    "network share, mounted on each), or give each host a journal of its own (README: "
    "Several hosts, one journal); a host is named here until it places into this folder, "
    "or for two days after its last run"
)


def other_download_folders(hosts: Iterable[str], folder: str) -> Attention:
    """Given the hosts that share this host's journal but place files into another
    download folder than this host's ``folder``, return what to say."""
    named = sorted(hosts)
    them = f"host {named[0]}" if len(named) == 1 else "hosts " + ", ".join(named)
    return Attention(
        f"{them} share{'s' if len(named) == 1 else ''} this journal but place"
        f"{'s' if len(named) == 1 else ''} files into another download folder than "
        f"{folder}: each folder holds only part of the mirror (an item may be split "
        "between them), and each host's RPC door tells Sonarr an item is in its own folder",
        ONE_FOLDER_HINT,
    )
