"""The RPC door's board: which put.io transfer an RPC client is shown for its torrent."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

from putio_mirror.core.state import JournalFacts, Policy, Snapshot, Submission, Transfer
from putio_mirror.journal.store import Journal
from putio_mirror.rpc.board import Board

HASH = "a" * 40
NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)


def test_a_torrent_with_two_transfers_on_put_io_is_shown_by_ours_in_any_listing_order(
    tmp_path: Path,
) -> None:
    # put.io lists two transfers of one info-hash (one added by hand, one ours): Sonarr is
    # shown ours, whichever put.io lists last
    ours = Transfer(2, "ours", "DOWNLOADING", HASH, percent_done=40)
    by_hand = Transfer(1, "by hand", "ERROR", HASH)
    facts = JournalFacts(
        submissions=MappingProxyType({HASH: Submission(HASH, 2, "ours", NOW)}),
        own_transfer_ids=frozenset({2}),
    )
    journal = Journal.open(f"sqlite:///{tmp_path / 'journal.sqlite3'}")
    try:
        board = Board(journal, Policy())
        for listed in ((by_hand, ours), (ours, by_hand)):
            board.refresh(Snapshot(transfers=listed, journal=facts), with_files=False)
            shown = board.transfer(HASH)
            assert shown is not None and shown.id == 2, listed
    finally:
        journal.close()
