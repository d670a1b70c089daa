"""The executor's steps that change put.io or the blackhole: submit a torrent or magnet
file, file one away, cancel, clean or delete on put.io. One function per kind of step,
given the collaborators it needs; each returns what to journal as the step's detail."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from putio_mirror.app.requested import give_magnet_back, made, make_way
from putio_mirror.app.rules import RemoteWriter
from putio_mirror.core.errors import BlackholeChangedError, ItemError, TorrentRefusedError
from putio_mirror.core.plan import (
    ArchiveDuplicate,
    CancelTransfer,
    CleanTransfers,
    DeleteRemote,
    RejectBlackholeFile,
    SubmitMagnet,
    SubmitTorrent,
)
from putio_mirror.journal.store import Journal
from putio_mirror.local.blackhole import (
    REJECTED_DIR,
    SUBMITTED_DIR,
    file_away,
    reject_refused,
    relative_name,
    reread,
)


def file_away_step(action: RejectBlackholeFile | ArchiveDuplicate, blackhole: Path) -> str:
    """Given a blackhole file refused or submitted already, move it to its folder."""
    folder = REJECTED_DIR if isinstance(action, RejectBlackholeFile) else SUBMITTED_DIR
    moved = file_away(Path(action.path), blackhole, folder, note=action.why)
    return f"moved to {relative_name(moved.parent, blackhole)}/"


def groom(
    remote: RemoteWriter, action: CancelTransfer | CleanTransfers | DeleteRemote
) -> str | None:
    """Given a grooming action, ask put.io to do it."""
    if isinstance(action, CancelTransfer):
        remote.cancel_transfers([action.transfer_id])
        return None
    if isinstance(action, CleanTransfers):
        cleaned = remote.clean_transfers(list(action.transfer_ids))
        return f"put.io cleaned {len(cleaned)}"
    remote.delete_files([action.file_id])
    return None


def submit(
    action: SubmitTorrent | SubmitMagnet,
    remote: RemoteWriter,
    journal: Journal,
    blackhole: Path,
    parent: int | None,
    now: Callable[[], datetime],
) -> str:
    """Given a blackhole torrent or magnet, submit it to put.io (into ``parent``), journaled
    before and after, and file it away; raise the refusal's ItemError if put.io refuses it
    (the file is moved to the rejected folder). A .torrent that replaces its magnet's
    transfer makes way for itself first (``requested.make_way``), and gives the magnet
    back if put.io refuses it (``requested.give_magnet_back``)."""
    path = Path(action.path)
    content = reread(path, action.info_hash, action.name)  # what put.io gets was hashed
    replaced = action.replaces if isinstance(action, SubmitTorrent) else None
    if replaced is not None:  # read first: a .torrent changed since never cancels its magnet
        make_way(remote, journal, action.info_hash, replaced)
    # Journaled first: a transfer whose answer is lost is still known as ours next run.
    journal.record_submission(action.info_hash, None, action.name, now())
    try:
        if isinstance(action, SubmitMagnet):
            transfer = remote.add_transfer(content.magnet_uri, save_parent_id=parent)
        else:
            # put.io is sent the file's own name, not the folder it was dropped into
            transfer = remote.upload_torrent(_own_name(action.name), content.data, parent)
    except TorrentRefusedError as refusal:  # it would be refused again on every run
        said = ""
        if isinstance(action, SubmitTorrent) and replaced is not None:
            said, _ = give_magnet_back(
                remote, journal, action.info_hash, action.name, action.replaced_uri, parent, now
            )
        rejected = reject_refused(path, blackhole, refusal, content.identity)
        raise ItemError(rejected.message + said, rejected.hint) from refusal
    # Journal before filing away: the next run archives a file left by a crash here.
    journal.record_submission(action.info_hash, transfer.id, action.name, now())
    try:
        file_away(path, blackhole, SUBMITTED_DIR, identity=content.identity)
    except BlackholeChangedError as changed:  # submitted all the same: done, said so
        return f"{made(transfer.id, replaced)} ({changed.message})"
    return made(transfer.id, replaced)


def _own_name(name: str) -> str:
    """Given a blackhole file's name relative to the blackhole, return its last part."""
    return name.rpartition("/")[2]
