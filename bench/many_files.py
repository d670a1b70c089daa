"""Many files: putio-mirror ``files download`` against ``aria2c -j8 -i list``, side by side.

Four scenarios (``--scenarios``), each in a fresh FakePutio, contenders alternating:

- ``small``: 10,000 files of 512 B–4 KiB (``--count-small``; sizes seeded, 100 files a
  folder), from an nginx: putio-mirror asks the fake for each file's URL
  (``files/{id}/url`` answers ``<nginx>/<id>.bin``), aria2c gets the nginx URLs directly;
- ``1MiB``: 1,000 files of 1 MiB (``--count-large``), the same way;
- ``small-latency``, ``1MiB-latency``: the same trees with ``--latency-ms`` (50) on every
  answer of the fake's API and node, and the files from the fake's own node for both
  (aria2c gets the node URLs the API would answer), so both see the same distance.

``--tls``: nginx serves HTTPS with a self-signed certificate both contenders are given, as
put.io's nodes speak TLS: the CPU of decrypting every byte, and each connection's handshake.

Every round starts from a fresh folder and journal; every copy is checked (size and
CRC32) after its round. Goals (issue 14): putio-mirror's wall time ≤ 1.0x aria2c's
(≤ 1.2x with latency) and ≤ 2 ms of CPU a file.

A new file's price: just before each run, ``common.new_file_price`` makes 200 empty files
in the folder the contender makes its own in (putio-mirror's staging folder) and prints
what one cost (``a new file ms``). On this VM's disk, an ext4 without a journal, that
price was 0.02 ms in one fresh folder and 1.1 ms in another, by where files deleted in the
last minutes lie; putio-mirror makes one new file a file (its part: ``strace -f -e
trace=openat`` over 100 files showed 100 parts made and 6 files of its journal), so its
CPU a file moved with it, run to run, whatever its code. Its CPU a file is judged as
measured, and again less that one new file (``less a new file``): the work of its own.

The floor (``bench/floor.py``: the data path in one loop over files of the scenario's
sizes, and the start of the chosen libraries) runs as a third contender in the same
alternation: on this VM the floor itself moved from 1.8 to 3.0 ms a 1 MiB file within a
day, so putio-mirror's CPU is also given above the floor measured beside it (both less
their new files' price). ``--no-floor`` leaves it out.

    .venv/bin/python bench/many_files.py [--rounds 3] [--scenarios small,1MiB,...]
        [--count-small 10000] [--count-large 1000] [--latency-ms 50] [--jobs 8] [--tls]
        [--no-floor]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from accounts import RemoteEntry, add_tree, node_links, seeded_sizes
from common import (
    MB,
    Measurement,
    Runner,
    alternate,
    base_parser,
    check_file,
    comma_list,
    export_file,
    main_guard,
    median,
    need_free_space,
    new_file_price,
    note,
    print_header,
    print_table,
    run_measured,
    run_putio_mirror,
    scratch_dir,
    tool_path,
    verdict,
    write_config,
)
from floor import data_path, start_seconds
from profiles import print_top, recording
from tools import ensure_tools, nginx, self_signed

from putio_mirror.core.naming import STAGING_DIR_NAME
from putio_mirror.fakeputio import FakePutio

MIB = 1024 * 1024
SMALL = (512, 4096)  # bytes: subtitles, .nfo files, cover art
PER_FOLDER = 100
TOP = "many"
MAX_CPU_MS_PER_FILE = 2.0
# The fake runs in this one Python process: busier than this share of a run's wall
# time, it (not the contender) probably sets the pace.
BUSY_FAKE = 0.8
SCENARIOS = ("small", "1MiB", "small-latency", "1MiB-latency")
MIRROR = "putio-mirror"
FLOOR = "floor"


@dataclass(frozen=True)
class Scenario:
    """One tree and where its files come from: nginx, or the fake's node (with latency)."""

    name: str
    sizes: tuple[int, ...]
    from_node: bool  # False: from nginx
    latency: float  # seconds before every answer of the fake (API and node)
    max_ratio: float  # the goal for putio-mirror's wall time / aria2c's

    @property
    def files(self) -> int:
        return len(self.sizes)

    @property
    def timeout(self) -> float:
        """Seconds a contender may take: at least 1 MB/s, and every latency paid 4x over."""
        return 120 + sum(size / MB + 4 * self.latency + 0.05 for size in self.sizes)


@dataclass(frozen=True)
class Listing:
    """The files under test: path under the download folder → (URL, size, CRC32)."""

    fake: FakePutio
    files: dict[str, tuple[str, int, str]]
    timeout: float

    def check(self, root: Path) -> None:
        """Raise BenchError unless every file is under ``root`` with its size and CRC32."""
        for relative, (_, size, crc32) in self.files.items():
            check_file(root / relative, size, crc32)


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    small = tuple(seeded_sizes(args.count_small, *SMALL))
    large = (MIB,) * args.count_large
    latency = args.latency_ms / 1000
    known = {
        "small": Scenario("small", small, False, 0.0, 1.0),
        "1MiB": Scenario("1MiB", large, False, 0.0, 1.0),
        "small-latency": Scenario("small-latency", small, True, latency, 1.2),
        "1MiB-latency": Scenario("1MiB-latency", large, True, latency, 1.2),
    }
    return [known[name] for name in args.scenarios]


class Profiles:
    """Where one scenario's putio-mirror runs are sampled to: ``<name>-<n>.txt``."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder, self.name = folder, name
        self.runs: list[Path] = []

    def next_run(self) -> list[str]:
        """The command prefix that samples the next run (the warm-up's too)."""
        self.runs.append(self.folder / f"{self.name}-{len(self.runs)}.txt")
        return recording(self.runs[-1])


def _profiles(args: argparse.Namespace, scenario: Scenario) -> Profiles | None:
    if args.profile is None:
        return None
    args.profile.mkdir(parents=True, exist_ok=True)
    return Profiles(args.profile, scenario.name)


# -- contenders ----------------------------------------------------------------------


def putio_mirror_runner(listing: Listing, cert: Path | None, profiles: Profiles | None) -> Runner:
    env = {"REQUESTS_CA_BUNDLE": str(cert)} if cert else {}

    def run(where: Path) -> Measurement:
        config = write_config(where, listing.fake)
        wrap = profiles.next_run() if profiles else ()
        price = new_file_price(where / "downloads" / STAGING_DIR_NAME)  # where its parts are made
        measured = run_putio_mirror(
            config, "files", "download", timeout=listing.timeout, env=env, wrap=wrap
        )
        listing.check(where / "downloads")
        return replace(measured, new_file_ms=price)

    return run


def floor_runner(sizes: Sequence[int]) -> Runner:
    """The floor of a Python mirror for files of these sizes (``bench/floor.py``): its
    data path's CPU (one thread, one loop) and the chosen libraries' start, as the
    CPU of one run."""
    files = [os.urandom(size) for size in sizes]

    def run(where: Path) -> Measurement:
        price = new_file_price(where / "floor")
        began = time.monotonic()
        cpu = data_path(files, where / "floor") * len(files) / 1000 + start_seconds()
        return Measurement(time.monotonic() - began, cpu, 0, new_file_ms=price)

    return run


def aria2c_runner(listing: Listing, jobs: int, cert: Path | None) -> Runner:
    def run(where: Path) -> Measurement:
        entries = [f"{url}\n  out={path}\n" for path, (url, _, _) in listing.files.items()]
        (where / "list.txt").write_text("".join(entries))
        target = where / "downloads"
        argv = [tool_path("aria2c"), f"-j{jobs}", "-i", str(where / "list.txt"), "-q"]
        argv += ["--allow-overwrite=true", "-d", str(target)]
        argv += [f"--ca-certificate={cert}"] if cert else []
        price = new_file_price(target)
        measured = run_measured(argv, timeout=listing.timeout)
        listing.check(target)
        return replace(measured, new_file_ms=price)

    return run


# -- one scenario --------------------------------------------------------------------


def measure(
    scenario: Scenario, args: argparse.Namespace, profiles: Profiles | None
) -> dict[str, list[Measurement]]:
    """Given a scenario, build its fake (and nginx), race the contenders; return the runs
    (putio-mirror's sampled into ``profiles`` if given)."""
    note(f"{scenario.name}: adding {scenario.files} files to a fake put.io…")
    with scratch_dir(args.workdir) as work, FakePutio() as fake:
        # every round's copy is kept to the end (see alternate), and nginx serves one more
        need_free_space(work, (2 * (args.rounds + 1) + 1) * sum(scenario.sizes))
        entries = add_tree(fake, scenario.sizes, per_folder=PER_FOLDER, top=TOP)
        tls = self_signed(work) if args.tls and not scenario.from_node else None
        with _links(scenario, fake, entries, work, args.workdir, tls) as urls:
            fake.latency_seconds = scenario.latency
            files = {
                entry.path: (urls[entry.file_id], entry.size, fake.file_crc32(entry.file_id))
                for entry in entries
            }
            listing = Listing(fake, files, scenario.timeout)
            cert = tls[0] if tls else None
            contenders = [
                (MIRROR, putio_mirror_runner(listing, cert, profiles)),
                (aria2c_name(args), aria2c_runner(listing, args.jobs, cert)),
            ]
            if args.floor:
                contenders.append((FLOOR, floor_runner(scenario.sizes)))
            return alternate(contenders, args.rounds, args.workdir, remove_at_end=True)


@contextmanager
def _links(
    scenario: Scenario,
    fake: FakePutio,
    entries: Sequence[RemoteEntry],
    work: Path,
    workdir: Path | None,
    tls: tuple[Path, Path] | None,
) -> Iterator[dict[int, str]]:
    """Yield each file's URL for aria2c: on the fake's node with latency, else on an
    nginx serving the same bytes, where the fake's links then point too."""
    if scenario.from_node:
        yield node_links(fake, entries)
        return
    serve = work / "serve"
    serve.mkdir()
    note(f"{scenario.name}: writing {scenario.files} files for nginx…")
    for entry in entries:
        export_file(fake, entry.file_id, serve / f"{entry.file_id}.bin")
    with nginx(serve, workdir=workdir, tls=tls) as base:
        fake.node_base_url = base
        yield {entry.file_id: f"{base}/{entry.file_id}.bin" for entry in entries}


def aria2c_name(args: argparse.Namespace) -> str:
    return f"aria2c -j{args.jobs}"


# -- tables --------------------------------------------------------------------------

RESULT_HEADERS = [
    "scenario",
    "contender",
    "wall s",
    "CPU s",
    "CPU ms/file",
    "a new file ms",
    "peak RSS MB",
    "fake CPU s",
    "wall s per round",
]
GOAL_HEADERS = [
    "scenario",
    "wall putio-mirror/aria2c",
    "goal",
    "verdict",
    "putio-mirror CPU ms/file",
    "goal",
    "verdict",
    "less a new file",
    "verdict",
    "above the floor ms/file",
]


def result_rows(scenario: Scenario, results: dict[str, list[Measurement]]) -> list[list[str]]:
    rows = []
    for contender, runs in results.items():
        cpu = median(run.cpu for run in runs)
        prices = [run.new_file_ms for run in runs if run.new_file_ms is not None]
        rows.append(
            [
                scenario.name,
                contender,
                f"{median(run.wall for run in runs):.2f}",
                f"{cpu:.2f}",
                f"{cpu * 1000 / scenario.files:.2f}",
                f"{median(prices):.2f}" if prices else "-",
                f"{median(run.rss_mb for run in runs):.0f}",
                f"{median(run.host_cpu for run in runs):.2f}",
                " ".join(f"{run.wall:.2f}" for run in runs),
            ]
        )
    return rows


def own_ms_per_file(run: Measurement, files: int) -> float:
    """Given a run that made one new file a file downloaded (putio-mirror its part, the
    floor its own), return its CPU ms a file less the price of that new file in its
    folder (``new_file_price``): what the contender's own work cost."""
    return run.cpu * 1000 / files - (run.new_file_ms or 0.0)


def goal_row(scenario: Scenario, results: dict[str, list[Measurement]], aria2c: str) -> list[str]:
    mine, theirs = results[MIRROR], results[aria2c]
    ratio = median(run.wall for run in mine) / median(run.wall for run in theirs)
    per_file = median(run.cpu for run in mine) * 1000 / scenario.files
    own = median(own_ms_per_file(run, scenario.files) for run in mine)
    floor = results.get(FLOOR)
    above = "-"
    if floor:  # round by round: each round's floor ran beside its putio-mirror run
        gaps = [
            own_ms_per_file(run, scenario.files) - own_ms_per_file(beside, scenario.files)
            for run, beside in zip(mine, floor, strict=True)
        ]
        above = f"{median(gaps):.2f}"
    return [
        scenario.name,
        f"{ratio:.2f}x",
        f"≤ {scenario.max_ratio:g}x",
        verdict(ratio, scenario.max_ratio, "x", inclusive=True),
        f"{per_file:.2f}",
        f"≤ {MAX_CPU_MS_PER_FILE:g}",
        verdict(per_file, MAX_CPU_MS_PER_FILE, "ms", inclusive=True),
        f"{own:.2f}",
        verdict(own, MAX_CPU_MS_PER_FILE, "ms", inclusive=True),
        above,
    ]


def fake_notes(scenario: Scenario, results: dict[str, list[Measurement]]) -> list[str]:
    """Say how busy the fake put.io was in each contender's runs, and when it was the
    bottleneck (it shares this process's one interpreter lock)."""
    notes = []
    for contender, runs in results.items():
        if contender == FLOOR:
            continue  # no fake: its bytes come from a socket pair
        busy = median(run.host_cpu for run in runs) / median(run.wall for run in runs)
        if busy >= BUSY_FAKE:
            notes.append(
                f"- {scenario.name}, {contender}: the fake put.io was busy {busy:.0%} of the "
                "wall time; it, not the contender, probably set the pace."
            )
        elif scenario.from_node:
            notes.append(
                f"- {scenario.name}, {contender}: the fake put.io was busy {busy:.0%} of the "
                "wall time (not the bottleneck)."
            )
    return notes


def run(args: argparse.Namespace) -> None:
    ensure_tools()
    print_header("many_files")
    chosen = scenarios(args)
    profiled = {scenario.name: _profiles(args, scenario) for scenario in chosen}
    measured = [(scenario, measure(scenario, args, profiled[scenario.name])) for scenario in chosen]
    rows = [row for scenario, results in measured for row in result_rows(scenario, results)]
    latency = f"latency scenarios: {args.latency_ms:g} ms on every API answer and node request"
    print_table(f"medians of {args.rounds} rounds ({latency})", RESULT_HEADERS, rows)
    goals = [goal_row(scenario, results, aria2c_name(args)) for scenario, results in measured]
    print_table("goals of issue 14 (medians)", GOAL_HEADERS, goals)
    notes = [line for scenario, results in measured for line in fake_notes(scenario, results)]
    if notes:
        print("\nThe fake put.io's own CPU (it runs in this process; one core at most):\n")
        print("\n".join(notes))
    for name, profiles in profiled.items():
        if profiles is not None:
            print_top(f"{name}, putio-mirror sampled by py-spy", profiles.runs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "many files")
    parser.add_argument(
        "--scenarios",
        type=comma_list(SCENARIOS),
        default=list(SCENARIOS),
        help=f"which, comma-separated ({','.join(SCENARIOS)})",
    )
    parser.add_argument("--count-small", type=int, default=10_000, help="small files (10000)")
    parser.add_argument("--count-large", type=int, default=1_000, help="1 MiB files (1000)")
    parser.add_argument(
        "--latency-ms", type=float, default=50.0, help="the fake's latency, *-latency (50)"
    )
    parser.add_argument("--jobs", type=int, default=8, help="aria2c -j (8)")
    parser.add_argument(
        "--no-floor",
        dest="floor",
        action="store_false",
        help="leave out the floor measured beside the contenders (bench/floor.py)",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="nginx serves HTTPS (a self-signed certificate both trust), as put.io's nodes do",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="FOLDER",
        help="sample putio-mirror's runs with py-spy into FOLDER, print the top functions "
        "(its figures then include py-spy's CPU)",
    )
    args = parser.parse_args(argv)
    return main_guard(lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
