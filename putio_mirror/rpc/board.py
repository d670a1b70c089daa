"""The last picture of put.io that the sync loop saw, kept for ``torrent-get``.

Polls never ask put.io: the watcher's syncs and passes hand every snapshot they
observe to ``Board.refresh``, which keeps the transfers by info-hash and, when the
snapshot lists the files, writes down in the journal where each RPC item is locally
(its path and files). ``torrent-get`` reads the journal and this board, nothing else.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from types import MappingProxyType

from putio_mirror.core.errors import MirrorError
from putio_mirror.core.mirroring import RemoteTree, index_tree
from putio_mirror.core.state import Desire, Policy, Snapshot, Transfer
from putio_mirror.journal.store import Journal

log = logging.getLogger(__name__)

ItemFiles = tuple[tuple[int, str, int], ...]


class Board:
    """Thread-safe: the sync thread refreshes it while request threads read it."""

    def __init__(self, journal: Journal, policy: Policy) -> None:
        self._journal = journal
        self._policy = policy
        self._lock = threading.Lock()
        self._transfers: dict[str, Transfer] = {}
        self._refreshed = threading.Event()

    def refresh(self, snapshot: Snapshot, with_files: bool) -> None:
        """Given a snapshot a run observed and whether it lists put.io's files, keep its
        transfers and record where the RPC items are."""
        transfers = {transfer.hash: transfer for transfer in snapshot.transfers if transfer.hash}
        with self._lock:
            self._transfers = transfers
        if with_files:
            try:
                self._locate(snapshot, transfers)
            except MirrorError as error:  # the sync that observed it must go on regardless
                log.warning("could not note where RPC items are: %s", error.message)
        self._refreshed.set()

    def transfer(self, info_hash: str) -> Transfer | None:
        with self._lock:
            return self._transfers.get(info_hash)

    def transfers(self) -> Mapping[str, Transfer]:
        """Return the transfers by info-hash as last refreshed (a refresh replaces the
        mapping, never changes it: a poll reads one consistent picture without the lock)."""
        with self._lock:
            return MappingProxyType(self._transfers)

    def wait_refreshed(self, timeout: float) -> bool:
        """Wait until the next refresh (tests and the benchmark); say whether it came."""
        self._refreshed.clear()
        return self._refreshed.wait(timeout)

    def _locate(self, snapshot: Snapshot, transfers: dict[str, Transfer]) -> None:
        desires = self._journal.desires.listing()  # fresher than the snapshot's facts
        if not desires:
            return
        tree = index_tree(snapshot.files, self._policy)
        for info_hash, desire in desires.items():
            transfer = transfers.get(info_hash)
            if transfer is None or transfer.file_id is None or transfer.file_id not in tree.paths:
                continue
            found = item_of(tree, transfer.file_id)
            if found != (desire.item_path, desire.item_files):
                self._journal.desires.locate(info_hash, transfer.file_id, *found)


def item_of(tree: RemoteTree, item_id: int) -> tuple[str, ItemFiles]:
    """Given the tree and an item's id, return its local path and its mirrored files."""
    files = sorted(tree.files_under(item_id), key=lambda item: item.id)
    return tree.paths[item_id], tuple((item.id, tree.paths[item.id], item.size) for item in files)


def is_placed(desire: Desire, progress: dict[int, tuple[int, bool, str | None]]) -> bool:
    """Given a desire and its files' journal progress, say whether all of it is placed."""
    if not desire.item_files:
        return False
    return all(progress.get(file_id, (0, False, None))[2] for file_id, _, _ in desire.item_files)
