"""An idle sync: 10,000 files in 200 folders, everything already mirrored.

One ``putio-mirror sync`` first downloads every file (1 byte each, so it is
quick) and fills the journal; then each round times another ``sync`` that has
nothing to do, and counts the API requests it made (the fake's request log,
host "api"). Targets from the issue: at most 15 requests and under 2 s.

    .venv/bin/python bench/idle_sync.py [--rounds 3] [--files 10000] [--folders 200]
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from common import (
    BenchError,
    Measurement,
    base_parser,
    main_guard,
    median,
    note,
    print_header,
    print_table,
    run_putio_mirror,
    scratch_dir,
    verdict,
    write_config,
)
from tools import ensure_tools

from putio_mirror.fakeputio import FakePutio

MAX_REQUESTS = 15
MAX_SECONDS = 2.0


def build(fake: FakePutio, files: int, folders: int, size: int) -> None:
    """Given a fake, add ``files`` files of ``size`` bytes spread over ``folders`` folders."""
    folder_ids = [fake.add_folder(f"Show {number:03d}") for number in range(1, folders + 1)]
    for number in range(files):
        parent = folder_ids[number % folders]
        fake.add_file(f"Episode {number:05d}.mkv", parent_id=parent, size=size)


def api_requests(fake: FakePutio) -> Counter[str]:
    """Return how often each API path was requested since the log was last cleared."""
    log = fake.requests
    # Paging goes on with POST .../continue, which changes nothing.
    touched = [
        entry
        for entry in log
        if entry.host != "api" or (entry.mutating and not entry.path.endswith("/continue"))
    ]
    if touched:
        first = touched[0]
        raise BenchError(f"the idle sync was not idle: {first.host} {first.method} {first.path}")
    return Counter(f"{entry.method} {entry.path}" for entry in log)


def idle_rounds(
    fake: FakePutio, config: Path, rounds: int
) -> tuple[list[Measurement], list[Counter[str]]]:
    measurements: list[Measurement] = []
    counts: list[Counter[str]] = []
    for number in range(1, rounds + 1):
        fake.clear_requests()
        measurements.append(run_putio_mirror(config, "sync", timeout=300))
        counts.append(api_requests(fake))
        note(f"round {number}/{rounds} idle sync: {measurements[-1].wall:.2f} s")
    return measurements, counts


def row(name: str, runs: list[Measurement], requests: list[int]) -> list[str]:
    return [
        name,
        f"{median(run.wall for run in runs):.3f}",
        f"{median(requests):.0f}",
        f"{median(run.cpu for run in runs):.2f}",
        f"{median(run.rss_mb for run in runs):.0f}",
        " ".join(f"{run.wall:.2f}" for run in runs),
    ]


def run(args: argparse.Namespace) -> None:
    ensure_tools(["time"])
    print_header("idle_sync")
    with scratch_dir(args.workdir) as work, FakePutio() as fake:
        note(f"building {args.files} files in {args.folders} folders…")
        build(fake, args.files, args.folders, args.size)
        config = write_config(work, fake)
        note("first sync: downloading everything to fill the journal…")
        fake.clear_requests()
        first = run_putio_mirror(config, "sync", timeout=120 + args.files / 10)
        first_requests = sum(1 for entry in fake.requests if entry.host == "api")
        note(f"first sync: {first.wall:.1f} s")
        idle, counts = idle_rounds(fake, config, args.rounds)
    totals = [sum(count.values()) for count in counts]
    title = f"sync of {args.files} files in {args.folders} folders"
    headers = ["run", "wall s", "API requests", "CPU s", "peak RSS MB", "wall s per round"]
    rows = [
        row("first sync (downloads everything)", [first], [first_requests]),
        row("idle sync (nothing to do)", idle, totals),
    ]
    print_table(f"{title}: medians of {args.rounds} idle rounds", headers, rows)
    wall = median(run.wall for run in idle)
    targets = [
        ["idle sync wall time", f"< {MAX_SECONDS:g} s", f"{wall:.3f} s",
         verdict(wall, MAX_SECONDS, "s")],
        ["idle sync API requests", f"≤ {MAX_REQUESTS}", f"{median(totals):.0f}",
         verdict(median(totals), MAX_REQUESTS, "requests", inclusive=True)],
    ]  # fmt: skip
    print_table("targets", ["figure", "target", "measured", "verdict"], targets)
    breakdown = ", ".join(f"{path} x{n}" for path, n in sorted(counts[-1].items()))
    print(f"\nAPI requests of the last idle sync: {breakdown}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "idle sync")
    parser.add_argument("--files", type=int, default=10_000, help="remote files (10000)")
    parser.add_argument("--folders", type=int, default=200, help="folders they are in (200)")
    parser.add_argument("--size", type=int, default=1, help="bytes per file (1)")
    args = parser.parse_args(argv)
    return main_guard(lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
