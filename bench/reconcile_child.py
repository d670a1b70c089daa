"""The child half of ``reconcile_scale.py``: build the inputs, time one step, print JSON.

It runs in its own process so that its peak RSS is only what this step needs,
and it imports nothing but the code under test (no fake server, no YAML).

    python bench/reconcile_child.py reconcile --files 100000 --folders 1000 [--empty-journal]
    python bench/reconcile_child.py facts --journal sqlite:////tmp/…/journal.sqlite3
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from types import MappingProxyType

from putio_mirror.core.state import DownloadRecord, JournalFacts, Policy, RemoteFile, Snapshot

FIRST_ID = 1_000_000
VERIFIED_AT = datetime(2024, 1, 1, tzinfo=UTC)


def remote_tree(files: int, folders: int) -> list[RemoteFile]:
    """Given counts, return ``folders`` folders at the root and ``files`` files spread in them."""
    tree = [
        RemoteFile(FIRST_ID + number, f"Show {number:04d}", 0, 0, is_folder=True)
        for number in range(folders)
    ]
    for number in range(files):
        folder = number % folders
        tree.append(
            RemoteFile(
                FIRST_ID + folders + number,
                f"Show {folder:04d} - Episode {number:06d}.mkv",
                FIRST_ID + folder,
                1_000_000 + number,
                is_folder=False,
                crc32=f"{number:08x}",
            )
        )
    return tree


def verified_records(tree: Sequence[RemoteFile]) -> dict[int, DownloadRecord]:
    """Given a tree, return a verified and placed download record for each of its files
    (placed: a record only verified is a file whose bytes were lost, fetched again)."""
    names = {item.id: item.name for item in tree if item.is_folder}
    records = {}
    for item in tree:
        if not item.is_folder:
            path = f"{names[item.parent_id]}/{item.name}"
            records[item.id] = DownloadRecord(
                item.id, path, item.size, item.crc32, item.size, VERIFIED_AT, path, VERIFIED_AT
            )
    return records


def peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def time_reconcile(files: int, folders: int, empty_journal: bool) -> dict[str, float]:
    """Given the sizes, build a snapshot and return the seconds ``reconcile`` takes on it."""
    from putio_mirror.core.reconcile import reconcile

    tree = remote_tree(files, folders)
    records = {} if empty_journal else verified_records(tree)
    journal = JournalFacts(downloads=MappingProxyType(records))
    snapshot = Snapshot(files=tuple(tree), journal=journal)
    before = peak_rss_kib()
    start = time.perf_counter()
    plan = reconcile(snapshot, Policy(), datetime.now(UTC))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rss_before_kib": before, "actions": len(plan.actions)}


def time_facts(url: str) -> dict[str, float]:
    """Given a journal URL, open it and return the seconds ``Journal.facts()`` takes."""
    from putio_mirror.journal.store import Journal

    with Journal.open(url) as journal:
        before = peak_rss_kib()
        start = time.perf_counter()
        facts = journal.facts()
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "rss_before_kib": before, "rows": len(facts.downloads)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one timed step of reconcile_scale.py")
    parser.add_argument("step", choices=["reconcile", "facts"])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--folders", type=int, default=1_000)
    parser.add_argument("--empty-journal", action="store_true")
    parser.add_argument("--journal", default="")
    args = parser.parse_args(argv)
    if args.step == "reconcile":
        result = time_reconcile(args.files, args.folders, args.empty_journal)
    else:
        result = time_facts(args.journal)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
