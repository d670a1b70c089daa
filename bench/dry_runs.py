"""The whole run at scale, for ``reconcile_scale.py``: ``putio-mirror sync --dry-run``.

A dry run is observe + reconcile + render and changes nothing, so the same
accounts serve every round. Each case is the installed ``putio-mirror`` as a
child process against a FakePutio in this process holding the account:

- ``--files`` (100,000) files in ``--folders`` (1,000) folders, every one mirrored
  (a journal that placed them all): the run a timer pays when nothing changed;
- the same account with no journal yet: every file becomes a download to plan;
- ``--pending`` (10,000) files, 100 a folder, with no journal: the plan a new user
  first sees.

Targets (issue 14): observe + reconcile of the 100,000-file account under 3 s and
300 MB; the dry run over 10,000 pending files under 1 s.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from accounts import (
    RemoteEntry,
    add_tree,
    fill_journal,
    placed_records,
    seeded_sizes,
)
from common import Measurement, Runner, note, run_putio_mirror, write_config

from putio_mirror.core.naming import STAGING_DIR_NAME
from putio_mirror.fakeputio import FakePutio

SMALL = (512, 4096)  # bytes; the size of a file does not change a dry run's work
PER_FOLDER = 100  # files a folder in the pending account, as in many_files.py


@dataclass(frozen=True)
class DryRunCase:
    """One dry run to time, the config it runs with, and its target wall time."""

    name: str
    config: Path
    max_seconds: float
    max_rss_mb: float = 300.0


def dry_run_runner(case: DryRunCase) -> Runner:
    def run(where: Path) -> Measurement:
        return run_putio_mirror(case.config, "sync", "--dry-run", timeout=600)

    return run


@contextmanager
def dry_run_cases(args: argparse.Namespace, work: Path) -> Iterator[list[DryRunCase]]:
    """Given the sizes and a folder, start the fakes and write the configs of every case;
    yield the cases while the fakes run."""
    with ExitStack() as stack:
        big = stack.enter_context(FakePutio())
        pending = stack.enter_context(FakePutio())
        files, count = f"{args.files:,}", f"{args.pending:,}"
        note(f"adding {files} files in {args.folders:,} folders to a fake put.io…")
        entries = account(big, args.files, args.folders)
        journal = f"sqlite:///{work / 'mirrored.sqlite3'}"
        note(f"filling a journal with {files} placed files…")
        fill_journal(journal, placed_records(big, entries))
        idle_root = folder(work, "idle")
        idle = write_config(idle_root, big, paths={"journal": journal})
        # as a host that placed them has it: a run refuses an empty download folder where
        # files were placed (a disk not mounted), and staging in it is what it finds
        (idle_root / "downloads" / STAGING_DIR_NAME).mkdir(parents=True)
        note(f"adding {count} files to another fake put.io…")
        account(pending, args.pending, -(-args.pending // PER_FOLDER))
        yield [
            DryRunCase(f"sync -n, {files} files, all mirrored", idle, 3.0),
            DryRunCase(
                f"sync -n, {files} files, no journal", write_config(folder(work, "new"), big), 3.0
            ),
            DryRunCase(
                f"sync -n, {count} files pending",
                write_config(folder(work, "pending"), pending),
                1.0,
            ),
        ]


def account(fake: FakePutio, files: int, folders: int) -> list[RemoteEntry]:
    """Given a started fake, add ``files`` small files spread over ``folders`` folders."""
    per_folder = max(1, -(-files // max(1, folders)))
    return add_tree(fake, seeded_sizes(files, *SMALL), per_folder=per_folder)


def folder(work: Path, name: str) -> Path:
    path = work / name
    path.mkdir()
    return path


def dry_run_outcome(measurement: Measurement) -> str:
    """The plan's summary: the last line the dry run printed."""
    lines = [line.strip() for line in measurement.output.splitlines() if line.strip()]
    return lines[-1] if lines else "(nothing printed)"
