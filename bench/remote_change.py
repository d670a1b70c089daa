"""The remote-change scenario of bench/faults.py: kill -9 while put.io renames, replaces and
deletes things between rounds.

``--change-rounds`` runs of ``putio-mirror sync`` (with ``delete_remote_after``), each in a
process of its own, are killed at seeded random moments; between two rounds put.io
changes under the mirror as a user or put.io itself would change it: a folder or a file
is renamed, a file is replaced by another of the same name, an item is deleted, a new
item arrives. Then a few runs finish the job, staging's leftovers are aged past the grace
period, a new item arrives (an empty listing is no verdict on staging), and one more run
tidies them.

Columns: runs and passed count rounds; corrupted placed = files in the download folder
whose size and CRC32 match no file put.io ever held; deleted unplaced = files that this
tool deleted on put.io while no local copy of them was placed (by size and CRC32);
stranded in staging = files left in staging at the end; missing at the end = files on
put.io with no local copy at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

import faults
from common import MB, file_crc32, note
from faults import (
    LAYOUT,
    STAGING,
    Account,
    build_account,
    bytes_on_disk,
    config_for,
    kill_at,
    output_tail,
    spawn_sync,
)

from putio_mirror.fakeputio import FakePutio

HEADERS = ["scenario", "runs", "passed", "corrupted placed", "deleted unplaced"]
HEADERS += ["stranded in staging", "missing at the end"]
Version = tuple[int, str]  # size, CRC32


@dataclass
class History:
    """Every file version put.io ever held, and what lay under each item when last seen."""

    versions: set[Version] = field(default_factory=set)
    under: dict[int, set[Version]] = field(default_factory=dict)

    def look(self, fake: FakePutio) -> None:
        """Remember the versions of the files now on put.io, and what lies under each
        top-level item now (put.io changes only between runs, never during one)."""
        files = {item["id"]: item for item in fake.files()}
        self.under = {}
        for item in files.values():
            if item["crc32"] is None:
                continue
            version = (item["size"], item["crc32"])
            self.versions.add(version)
            top = item
            while top["parent_id"] != 0:
                top = files[top["parent_id"]]
            self.under.setdefault(top["id"], set()).add(version)


@dataclass
class Tally(faults.Tally):
    """A row of the remote-change table: rounds as in faults.py, other counts."""

    deleted_unplaced: int = 0
    stranded: int = 0
    missing: int = 0

    def row(self) -> list[str]:
        counts = [self.corrupted, self.deleted_unplaced, self.stranded, self.missing]
        return [self.scenario, str(self.runs), str(self.passed), *map(str, counts)]


def placed_versions(downloads: Path) -> dict[Version, int]:
    """The versions of the files in the download folder (outside staging), counted."""
    found: dict[Version, int] = {}
    for path in downloads.rglob("*"):
        if path.is_file() and not path.is_symlink() and STAGING not in path.parts:
            version = (path.stat().st_size, file_crc32(path))
            found[version] = found.get(version, 0) + 1
    return found


def deleted_by_us(fake: FakePutio) -> list[int]:
    """The item ids this tool asked put.io to delete since the log was cleared."""
    ids: list[int] = []
    for request in fake.requests:
        if request.method == "POST" and request.path == "/v2/files/delete":
            form = parse_qs(request.body.decode())
            for value in form.get("file_ids", []) + form.get("file_id", []):
                ids += [int(part) for part in value.split(",") if part.strip()]
    return ids


def change_put_io(fake: FakePutio, rng: random.Random, number: int) -> str:
    """Change put.io as a user would between two runs; return what was done."""
    files = [item for item in fake.files() if item["crc32"] is not None]
    tops = [item for item in fake.files() if item["parent_id"] == 0]
    choice = rng.choice(["rename folder", "rename file", "replace", "delete", "add"])
    if choice == "rename folder" and (folders := [t for t in tops if t["crc32"] is None]):
        target = rng.choice(folders)
        fake.rename(target["id"], f"{target['name']} r{number}")
    elif choice == "rename file" and files:
        target = rng.choice(files)
        fake.rename(target["id"], f"r{number} {target['name']}")
    elif choice == "replace" and files:
        target = rng.choice(files)
        fake.delete_file(target["id"])
        fake.add_file(target["name"], target["parent_id"], size=rng.randint(1000, 3 * MB))
    elif choice == "delete" and tops:
        fake.delete_file(rng.choice(tops)["id"])
    else:
        choice = "add"
        folder = fake.add_folder(f"New {number}")
        for episode in range(rng.randint(1, 3)):
            fake.add_file(f"e{episode}.mkv", folder, size=rng.randint(1000, 4 * MB))
    return choice


def check_round(fake: FakePutio, history: History, downloads: Path, tally: Tally) -> str | None:
    """After a round: count corrupted placed files and deletions of what is not placed."""
    placed = placed_versions(downloads)
    corrupted = sum(n for version, n in placed.items() if version not in history.versions)
    missing = [
        (item_id, version)
        for item_id in deleted_by_us(fake)
        for version in history.under.get(item_id, set())
        if version not in placed
    ]
    unplaced = len(missing)
    tally.corrupted += corrupted
    tally.deleted_unplaced += unplaced
    if corrupted or unplaced:
        return (
            f"{corrupted} corrupted placed, {unplaced} deleted on put.io but not placed "
            f"(item, (size, CRC32)): {missing[:5]}"
        )
    return None


def age(staging: Path, days: float) -> None:
    """Make everything in staging look ``days`` older, as if that time had passed."""
    for path in staging.rglob("*"):
        info = path.lstat()
        shift = days * 86400
        os.utime(path, (info.st_atime - shift, info.st_mtime - shift), follow_symlinks=False)


def finish(fake: FakePutio, history: History, root: Path, config: Path, tally: Tally) -> None:
    """Run to the end, tidy after the grace period, and count what is left undone."""
    downloads, staging = root / "downloads", root / "downloads" / STAGING
    reason = None
    for number, aged in ((0, False), (-1, False), (-2, True)):
        if aged:
            age(staging, days=2)
            # With delete_remote_after the account may be empty by now, and an empty
            # listing is no verdict on what staging holds: a new item arrives, as it would.
            fake.add_file(f"arrived-{number}.mkv", size=1000)
        fake.clear_requests()
        history.look(fake)
        process, log = spawn_sync(config, root, number)
        if (code := process.wait()) != 0:
            reason = reason or f"a finishing run exited {code}:\n{output_tail(log)}"
        reason = check_round(fake, history, downloads, tally) or reason
    stranded = [str(path.relative_to(staging)) for path in staging.rglob("*") if path.is_file()]
    tally.stranded = len(stranded)

    placed = placed_versions(downloads)
    on_put_io = [(i["size"], i["crc32"]) for i in fake.files() if i["crc32"] is not None]
    tally.missing = sum(1 for version in on_put_io if version not in placed)
    if tally.stranded or tally.missing:
        reason = reason or f"{stranded} stranded in staging, {tally.missing} missing"
    tally.count(reason)


def remote_change_rows(args: argparse.Namespace, work: Path, deadline: float) -> list[Tally]:
    """Run the rounds and the finish; return their two rows."""
    rounds, last = Tally("kill -9 while put.io changes"), Tally("… then runs to the end")
    with FakePutio() as fake:
        account: Account = build_account(fake, args.change_size_mb * MB, LAYOUT)
        fake.node_bytes_per_second = args.rate_mb * MB
        root = work / "remote-change"
        root.mkdir()
        downloads = root / "downloads"
        config = config_for(root, fake, delete_remote_after=True)
        rng, history = random.Random(args.seed), History()
        for number in range(1, args.change_rounds + 1):
            if time.monotonic() > deadline:
                break
            history.look(fake)
            fake.clear_requests()
            process, log = spawn_sync(config, root, number)
            at = bytes_on_disk(downloads) + int(rng.uniform(0, account.total / 4))
            killed = kill_at(process, downloads, at, rng)
            reason = check_round(fake, history, downloads, rounds)
            if not killed and process.returncode not in (0, 1):
                reason = reason or f"exit {process.returncode}:\n{output_tail(log)}"
            done = change_put_io(fake, rng, number)
            rounds.count(reason)
            note(f"round {number}: {'killed' if killed else 'ended'}, then {done}")
        finish(fake, history, root, config, last)
    return [rounds, last]
