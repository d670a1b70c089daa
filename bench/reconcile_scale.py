"""Reconcile at scale: 100,000 remote files in 1,000 folders, 100,000 journal rows.

Two parts (``--parts``). ``steps``: each case in its own child process
(``reconcile_child.py``), which builds its inputs in memory and times one step, so
the peak RSS is honest:

- ``reconcile`` with every file mirrored in the journal (the steady state: nothing to do);
- ``reconcile`` with an empty journal (every file becomes a Download action);
- ``Journal.facts()`` on a real SQLite file holding 100,000 mirrored download rows.

``dry-run``: the whole run, observe + reconcile + render, as ``putio-mirror sync
--dry-run`` against a FakePutio holding the account (``dry_runs.py``): all mirrored,
no journal yet, and ``--pending`` (10,000) files pending.

Targets: reconcile under 2 s and 300 MB; the whole dry run of 100,000 files under
3 s and 300 MB, of 10,000 pending files under 1 s (issue 14).

    .venv/bin/python bench/reconcile_scale.py [--rounds 3] [--files 100000] [--folders 1000]
        [--pending 10000] [--parts steps,dry-run]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from accounts import fill_journal
from common import (
    MB,
    Measurement,
    Runner,
    alternate,
    base_parser,
    comma_list,
    main_guard,
    median,
    note,
    print_header,
    print_table,
    run_measured,
    scratch_dir,
    verdict,
)
from dry_runs import dry_run_cases, dry_run_outcome, dry_run_runner
from reconcile_child import remote_tree, verified_records
from tools import ensure_tools

CHILD = Path(__file__).with_name("reconcile_child.py")
MAX_SECONDS = 2.0
MAX_RSS_MB = 300.0
PARTS = ("steps", "dry-run")


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


def measure_steps(args: argparse.Namespace) -> None:
    """Time reconcile and Journal.facts() alone, each in a child; print their tables."""
    sizes = ["--files", str(args.files), "--folders", str(args.folders)]
    files = f"{args.files:,}"
    with scratch_dir(args.workdir) as work:
        url = f"sqlite:///{work / 'journal.sqlite3'}"
        note(f"filling a journal with {files} mirrored downloads…")
        fill_journal(url, verified_records(remote_tree(args.files, args.folders)).values())
        contenders = [
            (f"reconcile, {files} mirrored rows (idle)", child_runner("reconcile", *sizes)),
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


def measure_dry_runs(args: argparse.Namespace) -> None:
    """Time whole ``sync --dry-run`` runs against fake accounts; print their tables."""
    with scratch_dir(args.workdir) as work, dry_run_cases(args, work) as cases:
        contenders = [(case.name, dry_run_runner(case)) for case in cases]
        results = alternate(contenders, args.rounds, args.workdir)
    rows, checks = [], []
    for case in cases:
        runs = results[case.name]
        wall, rss = median(run.wall for run in runs), median(run.rss_mb for run in runs)
        rows.append(
            [
                case.name,
                f"{wall:.2f}",
                f"{median(run.cpu for run in runs):.2f}",
                f"{rss:.0f}",
                f"{median(run.host_cpu for run in runs):.2f}",
                " ".join(f"{run.wall:.2f}" for run in runs),
                dry_run_outcome(runs[-1]),
            ]
        )
        checks.append([case.name, f"< {case.max_seconds:g} s", f"{wall:.2f} s",
                       verdict(wall, case.max_seconds, "s")])  # fmt: skip
        checks.append([case.name, f"< {case.max_rss_mb:g} MB", f"{rss:.0f} MB",
                       verdict(rss, case.max_rss_mb, "MB")])  # fmt: skip
    headers = ["putio-mirror", "wall s", "CPU s", "peak RSS MB", "fake CPU s",
               "wall s per round", "plan (last line printed)"]  # fmt: skip
    print_table(f"whole dry runs: medians of {args.rounds} rounds", headers, rows)
    print_table("targets (issue 14)", ["case", "target", "measured", "verdict"], checks)
    print(
        "\n(fake CPU s: what the fake put.io, in this process, spent answering the run; "
        "it shares the machine's cores with putio-mirror.)"
    )


def run(args: argparse.Namespace) -> None:
    ensure_tools(["time"])
    print_header("reconcile_scale")
    if "steps" in args.parts:
        measure_steps(args)
    if "dry-run" in args.parts:
        measure_dry_runs(args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "reconcile at scale")
    parser.add_argument("--files", type=int, default=100_000, help="remote files (100000)")
    parser.add_argument("--folders", type=int, default=1_000, help="folders (1000)")
    parser.add_argument(
        "--pending", type=int, default=10_000, help="files of the pending dry run (10000)"
    )
    parser.add_argument(
        "--parts", type=comma_list(PARTS), default=list(PARTS), help=f"which ({','.join(PARTS)})"
    )
    args = parser.parse_args(argv)
    return main_guard(lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
