"""Hosts sharing a journal must place files into one download folder; a run that finds
another host placing into another folder says so (``needs you``), and so does ``doctor``.

Which folder a host places into is told by the folder's mark (``local/marks``: a random
name in the folder itself, the same on every host that mounts it), leased in the journal
for ``LEASE`` by each run that works on files (``Journal.place_into``): a host that stops
placing elsewhere stops being named once its lease runs out, or at once when it says its
new folder. A host is what takes turns under one run lock: its name and its lock's path
(two machines may share a name). Only a database server's journal (PostgreSQL) is shared
by hosts: a SQLite one is this host's alone, and nothing is written or said.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from putio_mirror.core.attention import Attention, other_download_folders
from putio_mirror.local.marks import folder_mark

if TYPE_CHECKING:  # a dry run without a journal never imports SQLAlchemy
    from putio_mirror.journal.store import Journal

#: how long a host's word on its folder holds: two days, so a nightly sync keeps it
LEASE = timedelta(days=2)


def other_folders(journal: Journal, downloads: Path) -> tuple[Attention, ...]:
    """Given the journal a run writes and its download folder, say in the journal that
    this host places into that folder, and return what needs a person if another host
    sharing the journal places into another one (nothing if the folder is not there yet:
    it gets its mark once it is)."""
    if not journal.on_server:
        return ()
    mark = folder_mark(downloads, make=True)
    if mark is None:
        return ()
    host = host_id(journal.lock_path)
    said = journal.place_into(mark, host, socket.gethostname(), LEASE)
    others = elsewhere(said, mark, host)
    return (other_download_folders(others, str(downloads)),) if others else ()


def host_id(lock: Path) -> str:
    """Given the journal's run lock, return this host's id: its name and the lock's path,
    hashed (what takes turns under one lock is one host)."""
    return hashlib.sha256(f"{socket.gethostname()}\0{lock}".encode()).hexdigest()[:16]


def elsewhere(said: Iterable[tuple[str, str, str]], mark: str, host: str) -> set[str]:
    """Given the (mark, host id, host name) the journal holds, this folder's mark and
    this host's id, return the names of the other hosts that place into another folder."""
    return {name for other_mark, other, name in said if other_mark != mark and other != host}
