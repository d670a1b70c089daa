"""``serve`` on hosts sharing one PostgreSQL journal."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from putio_mirror.core.errors import MirrorError
from putio_mirror.core.state import Desire
from putio_mirror.journal.store import Journal
from tests.test_hosts import shared_journal

__all__ = ["shared_journal"]  # a fixture, used here


def test_one_torrent_added_on_many_hosts_at_once_is_one_desire_and_no_error(
    shared_journal: str,
) -> None:
    """Hosts sharing a PostgreSQL journal each take Sonarr's ``torrent-add`` of one torrent
    at the same moment: one is added, the others are duplicates, none an error (which
    Sonarr shows, failing the grab)."""
    journals = [Journal.open(shared_journal) for _ in range(4)]
    added: list[bool] = []
    errors: list[MirrorError] = []
    barrier = threading.Barrier(len(journals))

    def add(journal: Journal, info_hash: str) -> None:
        desire = Desire(info_hash, 0, f"item {info_hash[:4]}", "torrent", datetime.now(UTC))
        barrier.wait()
        try:
            added.append(journal.desires.add(desire, b"d4:infod4:name1:xee")[1])
        except MirrorError as error:
            errors.append(error)

    try:
        for n in range(10):
            info_hash = f"{n:040x}"
            threads = [threading.Thread(target=add, args=(j, info_hash)) for j in journals]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        for journal in journals:
            journal.close()
    assert errors == []
    assert sorted(added) == [False] * 30 + [True] * 10
