"""Reconcile at scale: 100,000 remote files in 1,000 folders, 100,000 journal rows.

Each case runs in its own child process (``reconcile_child.py``), which builds
its inputs in memory and times one step, so the peak RSS is honest:

- ``reconcile`` with every file verified in the journal (the steady state: nothing to do);
- ``reconcile`` with an empty journal (every file becomes a Download action);
- ``Journal.facts()`` on a real SQLite file holding 100,000 verified download rows.

Targets from the issue: reconcile under 2 s and under 300 MB.

    .venv/bin/python bench/reconcile_scale.py [--rounds 3] [--files 100000] [--folders 1000]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import (
    MB,
    Measurement,
    Runner,
    alternate,
    base_parser,
    main_guard,
    median,
    note,
    print_header,
    print_table,
    run_measured,
    scratch_dir,
    verdict,
)
from reconcile_child import VERIFIED_AT, remote_tree, verified_records
from tools import ensure_tools

CHILD = Path(__file__).with_name("reconcile_child.py")
MAX_SECONDS = 2.0
MAX_RSS_MB = 300.0


def fill_journal(url: str, files: int, folders: int) -> None:
    """Given a journal URL, create it and insert one verified download row per file."""
    from sqlalchemy import create_engine, insert

    from putio_mirror.journal.store import Journal, downloads_table

    Journal.open(url).close()
    rows = [
        {
            "file_id": record.file_id,
            "relative_path": record.relative_path,
            "size": record.size,
            "crc32": record.crc32,
            "bytes_done": record.bytes_done,
            "verified_at": VERIFIED_AT,
            "updated_at": VERIFIED_AT,
            "failures": 0,
        }
        for record in verified_records(remote_tree(files, folders)).values()
    ]
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(insert(downloads_table), rows)
    finally:
        engine.dispose()


def child_runner(*args: str) -> Runner:
    def run(where: Path) -> Measurement:
        return run_measured([sys.executable, str(CHILD), *args], timeout=600)

    return run


def child_result(measurement: Measurement) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(measurement.output.strip().splitlines()[-1])
    return result


def summary(results: dict[str, list[Measurement]]) -> list[list[str]]:
    rows = []
    for name, runs in results.items():
        details = [child_result(run) for run in runs]
        rows.append(
            [
                name,
                f"{median(detail['seconds'] for detail in details):.3f}",
                f"{median(run.wall for run in runs):.2f}",
                f"{median(run.rss_mb for run in runs):.0f}",
                f"{median(detail['rss_before_kib'] * 1024 / MB for detail in details):.0f}",
                " ".join(f"{detail['seconds']:.3f}" for detail in details),
                _outcome(details[-1]),
            ]
        )
    return rows


def _outcome(detail: dict[str, Any]) -> str:
    if "actions" in detail:
        return f"{detail['actions']:,} actions"
    return f"{detail['rows']:,} rows read"


def targets(rows: list[list[str]]) -> list[list[str]]:
    checks = []
    for name, seconds, _, rss, *_ in rows:
        checks.append([name, f"{seconds} s", verdict(float(seconds), MAX_SECONDS, "s")])
        checks.append([name, f"{rss} MB", verdict(float(rss), MAX_RSS_MB, "MB")])
    return checks


def run(args: argparse.Namespace) -> None:
    ensure_tools(["time"])
    print_header("reconcile_scale")
    sizes = ["--files", str(args.files), "--folders", str(args.folders)]
    files = f"{args.files:,}"
    with scratch_dir(args.workdir) as work:
        url = f"sqlite:///{work / 'journal.sqlite3'}"
        note(f"filling a journal with {files} verified downloads…")
        fill_journal(url, args.files, args.folders)
        contenders = [
            (f"reconcile, {files} verified rows (idle)", child_runner("reconcile", *sizes)),
            (
                f"reconcile, empty journal ({files} downloads)",
                child_runner("reconcile", *sizes, "--empty-journal"),
            ),
            (f"Journal.facts(), SQLite, {files} rows", child_runner("facts", "--journal", url)),
        ]
        results = alternate(contenders, args.rounds, args.workdir)
    headers = [
        "case",
        "timed step s",
        "process wall s",
        "peak RSS MB",
        "RSS before step MB",
        "timed s per round",
        "outcome",
    ]
    rows = summary(results)
    title = f"{files} remote files in {args.folders:,} folders: medians of {args.rounds} rounds"
    print_table(title, headers, rows)
    target_rows = targets(rows)
    target_headers = ["case", "measured", f"verdict (< {MAX_SECONDS:g} s, < {MAX_RSS_MB:g} MB)"]
    print_table("targets (set for reconcile; facts shown against them too)", target_headers,
                target_rows)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "reconcile at scale")
    parser.add_argument("--files", type=int, default=100_000, help="remote files (100000)")
    parser.add_argument("--folders", type=int, default=1_000, help="folders (1000)")
    args = parser.parse_args(argv)
    return main_guard(lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
