"""The executor's step for torrents RPC clients asked for: submit one to put.io.

Like a blackhole submission, it is journaled before put.io is asked (a transfer whose
answer is lost is still known as ours next run) and again with the transfer's id. The
bytes sent are the ones whose info-hash the RPC door checked, kept in the journal. A
category goes to a folder of that name under the mirrored root on put.io, so the whole
mirror places the item once, at ``<downloads>/<category>/<item>``. A magnet desire
with a .torrent of it dropped in the blackhole takes that .torrent first
(``take_dropped``), so it is the .torrent that goes, into the category's folder.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Protocol

from putio_mirror.core.errors import (
    BlackholeChangedError,
    ItemError,
    MirrorError,
    TorrentRefusedError,
)
from putio_mirror.core.plan import SubmitDesired
from putio_mirror.core.state import Transfer
from putio_mirror.journal.store import Journal
from putio_mirror.local.blackhole import (
    SUBMITTED_DIR,
    file_away,
    parse_torrent,
    reread,
    torrent_size,
)


class Submitter(Protocol):
    """The part of the put.io client that a submission needs."""

    def upload_torrent(
        self, filename: str, data: bytes, parent_id: int | None = None
    ) -> Transfer: ...

    def add_transfer(self, url: str, save_parent_id: int | None = None) -> Transfer: ...

    def cancel_transfers(self, ids: list[int]) -> None: ...

    def folder_named(self, parent_id: int, name: str) -> int: ...


class Folders(Protocol):
    """Where submissions go on put.io: the mirrored folder, and the blackhole's folder."""

    @property
    def remote_root_id(self) -> int: ...

    @property
    def save_parent_id(self) -> int | None: ...


def submit_desired(
    remote: Submitter,
    journal: Journal,
    action: SubmitDesired,
    folders: Folders,
    now: Callable[[], datetime],
    blackhole: Path,
) -> str:
    """Given a planned submission, send it to put.io and journal it; return a detail.

    Raise ItemError if its bytes are gone from the journal or put.io refuses it (the
    refusal is kept on the desire, so it is not sent again and clients see why).

    One that replaces its magnet's transfer cancels that first: put.io may refuse a
    torrent it already has as a transfer. The journal forgets that transfer before, so a
    run that stops in between submits the .torrent again, or records its transfer.

    One that takes a .torrent dropped in the ``blackhole`` journals it as the desire's
    before anything else (``take_dropped``): a run stopped after that submits it again
    from the journal, never the magnet.
    """
    left = "" if action.dropped is None else take_dropped(journal, action, blackhole)
    data = None if action.magnet_uri else journal.desires.torrent(action.info_hash)
    if not action.magnet_uri and data is None:
        raise ItemError(
            f"{action.name}: the journal holds no .torrent for it", "add it again over RPC"
        )
    root_id = folders.remote_root_id
    if action.category:
        parent: int | None = remote.folder_named(root_id, action.category)
    else:  # into the mirrored folder, or it would never come down
        parent = root_id or folders.save_parent_id
    if action.replaces is not None:
        make_way(remote, journal, action.info_hash, action.replaces)
    journal.record_submission(action.info_hash, None, action.name, now())
    try:
        if action.magnet_uri:
            transfer = remote.add_transfer(action.magnet_uri, save_parent_id=parent)
        else:
            assert data is not None
            transfer = remote.upload_torrent(f"{action.name}.torrent", data, parent)
    except TorrentRefusedError as refusal:
        said, back = "", False
        if action.replaces is not None:
            said, back = give_magnet_back(
                remote, journal, action.info_hash, action.name, action.replaced_uri, parent, now
            )
        if back:  # the desire is its magnet again: not replaced on every run
            journal.desires.change(
                [action.info_hash], kind="magnet", magnet_uri=action.replaced_uri, torrent=None
            )
        else:
            journal.desires.change([action.info_hash], error=refusal.message)
        raise ItemError(refusal.message + said, refusal.hint) from refusal
    journal.record_submission(action.info_hash, transfer.id, action.name, now())
    return made(transfer.id, action.replaces) + left


def take_dropped(journal: Journal, action: SubmitDesired, blackhole: Path) -> str:
    """Given a magnet desire's submission that takes a .torrent dropped in the blackhole,
    read the file again (the bytes whose hash was checked), keep them as the desire's
    torrent, then move the file to ``.submitted/``: from now on the desire submits it.
    Return what to add to the step's detail if the file could not be moved (the next scan
    files it away as a duplicate); raise ItemError, leaving the file, if it changed, or
    if no live desire holds a .torrent now (a client removed it: the next scan submits
    the file on its own)."""
    assert action.dropped is not None
    path, name = Path(action.dropped[0]), action.dropped[1]
    content = reread(path, action.info_hash, name)
    torrent_name = parse_torrent(content.data)[1]
    size = torrent_size(content.data)
    if not journal.desires.take_torrent(action.info_hash, torrent_name, size, content.data):
        raise ItemError(
            f"{name}: its RPC item was removed meanwhile",
            "Nothing to do: the next run looks at the blackhole afresh.",
        )
    try:
        file_away(path, blackhole, SUBMITTED_DIR, identity=content.identity)
    except BlackholeChangedError as changed:  # its bytes are journaled: it goes on
        return f" ({changed.message})"
    return ""


class Canceller(Protocol):
    """The part of the put.io client that making way for a .torrent needs."""

    def cancel_transfers(self, ids: list[int]) -> None: ...


def make_way(remote: Canceller, journal: Journal, info_hash: str, magnet_transfer: int) -> None:
    """Given a torrent's info-hash and the transfer of its magnet (ours, not started by
    put.io), forget that transfer in the journal, then cancel it on put.io, before its
    .torrent is submitted (over RPC or from the blackhole): put.io may refuse a torrent it
    already has as a transfer.

    In this order a run stopped anywhere leaves one transfer in the end: stopped before
    the cancel, the submission reads as only attempted, so the next run records the
    magnet's transfer again and replaces it; after, put.io shows nothing of the torrent,
    so the next run submits the .torrent."""
    journal.forget_transfer(info_hash, magnet_transfer)
    remote.cancel_transfers([magnet_transfer])


class Adder(Protocol):
    """The part of the put.io client that giving a magnet back needs."""

    def add_transfer(self, url: str, save_parent_id: int | None = None) -> Transfer: ...


def give_magnet_back(
    remote: Adder,
    journal: Journal,
    info_hash: str,
    name: str,
    uri: str,
    parent: int | None,
    now: Callable[[], datetime],
) -> tuple[str, bool]:
    """Given a .torrent put.io refused after its magnet's transfer made way for it
    (``make_way``), add that magnet again, journaled as ours, so that the torrent is not
    lost with it; return what to add to the refusal's message, and whether it is back.

    The submission was journaled before the .torrent was sent, so a magnet whose answer
    is lost is paired by its info-hash next run, as any submission."""
    gone = "; its magnet's transfer was cancelled to make way for it"
    if not uri.lower().startswith("magnet:"):
        return f"{gone}: add the magnet again", False
    try:
        transfer = remote.add_transfer(uri, save_parent_id=parent)
    except MirrorError as error:
        return f"{gone}, and adding it again failed ({error.message}): add it again", False
    journal.record_submission(info_hash, transfer.id, name, now())
    return f"; its magnet was added again (transfer {transfer.id})", True


def made(transfer_id: int, replaced: int | None) -> str:
    """Given the transfer put.io made of a submission and the one it replaced, if any,
    say so for the journal."""
    if replaced is not None:
        return f"transfer {transfer_id}, in place of transfer {replaced} (its magnet)"
    return f"transfer {transfer_id}"
