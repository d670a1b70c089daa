"""Reliability report: `sync` under kill -9 and under every fault, at a larger scale.

kill -9: ``--rounds`` runs of ``putio-mirror sync``, each in a process of its own, over
a ``--size-mb`` account of nested items, are killed at seeded random moments (once a
random number of bytes is on disk, or at a random early moment); one last run must then
finish the job. After every kill every file visible in the download folder must be
byte-exact and every item whole, and the next run may not ask the node again for bytes
that a ``.part`` held for sure (its length, or its segment table's done bytes).

Power cut: the same rounds again, each kill -9 followed by a simulated power cut: every
``.part`` keeps only the bytes of its last completed sync (the runs record them with
their sync function), the sidecars stay as the killed run left them; then the next run.
No file placed may be corrupt, and no claimed byte may be fetched again.

Remote change (bench/remote_change.py): ``--change-rounds`` kill -9 rounds over a
``--change-size-mb`` account with ``delete_remote_after`` on, put.io renaming, replacing and
deleting things between rounds; then runs to the end and a tidy after the grace period. No
corrupted file placed, no file deleted on put.io without a placed local copy, nothing left
in staging, nothing missing.

Faults: ``--fault-rounds`` rounds of each scenario of tests/test_faults.py over a
``--fault-size-mb`` account, through the CLI in this process. Backoff sleeps and outages
run on a virtual clock (a two-minute outage costs no real time); the 429 storm keeps
real time, since what it measures is the pause before each retry.

Columns: runs and passed count rounds; re-fetched bytes = bytes the node sent minus the
bytes of the files; bytes lost = bytes the node sent again although a ``.part`` held
them, right, at the kill before (past what its segment table claimed), beyond the first
chunk of each unfinished segment: since a table claims only bytes a completed sync
covered, that is up to ``sync_every`` (16 MiB) per file in flight at each kill, the price
of surviving a power cut; files corrupted = final files
with a wrong CRC32 (a missing file fails its round); files visible unverified = files
seen at their final path with wrong bytes, or items seen half (summed over every check).

    .venv/bin/python bench/faults.py [--rounds 100] [--size-mb 300] [--fault-rounds 3]
        [--fault-size-mb 40] [--rate-mb 20] [--time-limit 600] [--seed 1] [--workdir DIR]
        [--change-rounds 100] [--change-size-mb 60] [--parts kill,power-cut,remote-change,faults]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any
from unittest.mock import patch

from common import (
    MB,
    child_env,
    file_crc32,
    human_size,
    main_guard,
    need_free_space,
    note,
    print_header,
    print_table,
    putio_mirror_command,
    scratch_dir,
    write_config,
)

from putio_mirror.app import fetchers as app_fetchers
from putio_mirror.app import run as app
from putio_mirror.cli.main import main as cli_main
from putio_mirror.core.pacing import AUTO_MAX_FILES
from putio_mirror.core.retry import Backoff
from putio_mirror.fakeputio import FakePutio, LoggedRequest
from putio_mirror.journal.store import Journal
from putio_mirror.putio.client import PutioClient

CHUNK = 64 * 1024
STAGING = ".putio-mirror-staging"
# Nested items, loose files and sizes from a subtitle to a film (fractions of the total);
# the biggest files are fetched over several connections at once.
LAYOUT = [
    ("Movie A (2021)/Movie.A.2021.mkv", 0.30),
    ("Movie A (2021)/Subs/Movie.A.2021.en.srt", 0.0002),
    ("Show B/Season 1/Show.B.S01E01.mkv", 0.10),
    ("Show B/Season 1/Show.B.S01E02.mkv", 0.10),
    ("Show B/Season 1/Show.B.S01E03.mkv", 0.08),
    ("Show B/Season 1/Extras/Featurette.mkv", 0.03),
    ("Movie C/Movie.C.mkv", 0.15),
    ("Album D/CD1/01 - Intro.flac", 0.02),
    ("Album D/CD1/02 - Song.flac", 0.02),
    ("Album D/CD2/01 - Outro.flac", 0.02),
    ("Pack E/a/b/c/deep.bin", 0.0798),
    ("loose-1.bin", 0.06),
    ("loose-2.bin", 0.04),
]
#: the folder that ``--small-files`` fills with files of 512 B-4 KiB (subtitles, .nfo files)
SMALL_FOLDER = "Pack S"
HEADERS = ["scenario", "runs", "passed", "re-fetched bytes", "bytes lost"]
HEADERS += ["files corrupted", "files visible unverified"]
Spans = dict[int, list[tuple[int, int]]]


@dataclass
class Tally:
    """One row of the report."""

    scenario: str
    runs: int = 0
    passed: int = 0
    refetched: int = 0
    lost: int | None = None
    corrupted: int = 0
    unverified: int = 0
    failures: list[str] = field(default_factory=list)

    def count(self, reason: str | None) -> None:
        self.runs += 1
        if reason is None:
            self.passed += 1
        else:
            self.failures.append(f"round {self.runs}: {reason}")

    def row(self) -> list[str]:
        lost = "-" if self.lost is None else f"{self.lost:,}"
        counts = [str(self.corrupted), str(self.unverified)]
        return [
            self.scenario,
            str(self.runs),
            str(self.passed),
            f"{self.refetched:,}",
            lost,
            *counts,
        ]


@dataclass
class Account:
    """The files put in a fake: ids by relative path, sizes and CRC32s by id."""

    fake: FakePutio
    ids: dict[str, int]
    sizes: dict[int, int]
    crcs: dict[int, str]

    @property
    def total(self) -> int:
        return sum(self.sizes.values())


def layout_with_small(small_files: int, seed: int) -> list[tuple[str, float]]:
    """Given how many small files to add, return LAYOUT and that many files of 512 B-4 KiB
    (their share is minus their size in bytes: see ``build_account``)."""
    rng = random.Random(seed)
    small = [
        (f"{SMALL_FOLDER}/part {n:05d}.nfo", -rng.randint(512, 4096)) for n in range(small_files)
    ]
    return [*LAYOUT, *small]


def build_account(fake: FakePutio, total: int, layout: Sequence[tuple[str, float]]) -> Account:
    """Given a fake and a total size, add the layout's folders and files; return them. A
    file's share is a fraction of the total, or minus its size in bytes."""
    folders, ids = {"": 0}, {}
    for relative, share in layout:
        parent = ""
        for name in relative.split("/")[:-1]:
            here = f"{parent}/{name}" if parent else name
            if here not in folders:
                folders[here] = fake.add_folder(name, parent_id=folders[parent])
            parent = here
        size = int(-share) if share < 0 else max(1000, int(total * share))
        ids[relative] = fake.add_file(relative.rsplit("/", 1)[-1], folders[parent], size=size)
    sizes = {file_id: fake.file(file_id)["size"] for file_id in ids.values()}
    return Account(fake, ids, sizes, {i: fake.file_crc32(i) for i in ids.values()})


# -- what must be true of the folders --------------------------------------------------------


def visible_problems(account: Account, downloads: Path, seen: dict[str, tuple[int, int]]) -> int:
    """Count files outside staging that are not byte-exact, and items seen half."""
    problems = 0
    for path in downloads.rglob("*"):
        relative = str(path.relative_to(downloads))
        if not path.is_file() or STAGING in Path(relative).parts:
            continue
        info = path.stat()
        if seen.get(relative) == (info.st_ino, info.st_mtime_ns):
            continue  # a placed file never changes; read it once
        file_id = account.ids.get(relative)
        if file_id is None or file_crc32(path) != account.crcs[file_id]:
            problems += 1
            continue
        seen[relative] = (info.st_ino, info.st_mtime_ns)
    for item in {relative.split("/")[0] for relative in account.ids if "/" in relative}:
        wanted = [r for r in account.ids if r.startswith(f"{item}/")]
        if (downloads / item).exists() and not all((downloads / r).is_file() for r in wanted):
            problems += 1
    return problems


def final_problems(account: Account, downloads: Path) -> tuple[int, int]:
    """Count the files missing from their path, and those with another CRC32 than put.io's."""
    missing = corrupted = 0
    for relative, file_id in account.ids.items():
        path = downloads / relative
        if not path.is_file():
            missing += 1
        elif file_crc32(path) != account.crcs[file_id]:
            corrupted += 1
    return missing, corrupted


def held_on_disk(staging: Path) -> Spans:
    """The byte ranges each ``.part`` holds for sure: its segment table's done bytes,
    else everything up to its length."""
    held: Spans = {}
    for part in staging.glob("*.part"):
        table = part.with_name(part.name + ".segments")
        if table.exists():
            rows = json.loads(table.read_text())["segments"]
            held[int(part.stem)] = [(start, start + done) for start, _, done, *_ in rows if done]
        elif part.stat().st_size:
            held[int(part.stem)] = [(0, part.stat().st_size)]
    return held


def unfinished_segments(staging: Path) -> Iterator[tuple[Path, int, int, int]]:
    """Yield (part, file id, first byte not claimed, segment end) of every segment left."""
    for table in staging.glob("*.part.segments"):
        part = table.with_name(table.name.removesuffix(".segments"))
        for start, end, done, *_ in json.loads(table.read_text())["segments"]:
            if start + done < end and part.exists():
                yield part, int(part.stem), start + done, end


def unclaimed(account: Account, staging: Path) -> Spans:
    """The bytes already right on disk past each segment's claim, beyond its first chunk:
    the next run fetches them again."""
    spans: Spans = {}
    for part, file_id, first, end in unfinished_segments(staging):
        valid = valid_prefix(account.fake, part, file_id, first, end)
        if valid > CHUNK:
            spans.setdefault(file_id, []).append((first + CHUNK, first + valid))
    return spans


def refetched_from_disk(fake: FakePutio, on_disk: Spans) -> int:
    """Bytes the node sent in this run that were already right on disk (``on_disk``)."""
    lost = 0
    for file_id, start, request in node_answers(fake):
        if request.status in (200, 206):
            end = start + request.body_bytes_sent
            lost += sum(max(0, min(b, end) - max(a, start)) for a, b in on_disk.get(file_id, []))
    return lost


def asked_again(fake: FakePutio, held: Spans) -> int:
    """Count node requests that start inside bytes a part held when the run began."""
    return sum(
        any(a <= start < b for a, b in held.get(file_id, []))
        for file_id, start, _ in node_answers(fake)
    )


def node_answers(fake: FakePutio) -> Iterator[tuple[int, int, LoggedRequest]]:
    """Yield (file id, first byte asked, request) of every request the node got."""
    for request in fake.requests:
        match = re.fullmatch(r"/download/(\d+)", request.path)
        if request.host == "node" and match is not None:
            asked = re.fullmatch(r"bytes=(\d+)-\d*", request.headers.get("Range", "bytes=0-"))
            yield int(match[1]), int(asked[1]) if asked else 0, request


def valid_prefix(fake: FakePutio, part: Path, file_id: int, start: int, end: int) -> int:
    """How many bytes of ``part`` from ``start`` on are already the file's (in whole
    pieces of 64 KiB: finer makes no difference beside the chunk each segment may lose)."""
    valid = 0
    with part.open("rb") as source:
        source.seek(start)
        for piece in fake.file_pieces(file_id, start, end):
            if source.read(len(piece)) != piece:
                break
            valid += len(piece)
    return valid


def journal_settled(root: Path) -> bool:
    """True if no action of any run is left "started"."""
    journal = Journal.open(f"sqlite:///{root / 'state' / 'journal.sqlite3'}")
    try:
        return all(
            action.status != "started"
            for run in journal.recent_runs(10_000)
            for action in journal.actions_of(run.id)
        )
    finally:
        journal.close()


def bytes_on_disk(downloads: Path) -> int:
    total = 0
    # os.walk passes over folders that vanish while it looks (a run renames them).
    for folder, _, names in os.walk(downloads):
        for name in names:
            if name.endswith(".segments"):
                continue
            try:
                info = os.lstat(os.path.join(folder, name))
            except FileNotFoundError:
                continue  # placed or discarded by the run meanwhile
            if stat.S_ISREG(info.st_mode):
                total += min(info.st_size, info.st_blocks * 512)
    return total


# -- kill -9 -----------------------------------------------------------------------------------


def config_for(root: Path, fake: FakePutio, **download: object) -> Path:
    quick = {"read_timeout_seconds": 2, "max_outage_seconds": 20, "chunk_size_kb": CHUNK // 1024}
    return write_config(root, fake, putio={"timeout_seconds": 5}, download=quick | download)


def kill_at(process: subprocess.Popen[bytes], downloads: Path, at: int, rng: random.Random) -> bool:
    """Kill -9 once ``at`` bytes are on disk, or at a random early moment (a quarter of the
    rounds); return True if killed, False if the run had ended by itself."""
    early = rng.random() < 0.25
    deadline = time.monotonic() + (rng.uniform(0.0, 0.8) if early else 60)
    while time.monotonic() < deadline and process.poll() is None:
        if not early and bytes_on_disk(downloads) >= at:
            time.sleep(rng.uniform(0.0, 0.03))  # anywhere within a chunk
            break
        time.sleep(0.005)
    if process.poll() is not None:
        return False
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    return True


def kill_rounds(
    args: argparse.Namespace, work: Path, deadline: float, power_cut: bool = False
) -> list[Tally]:
    """Run the kill -9 rounds (each followed by a power cut if ``power_cut``), then one
    run to the end; return their two rows."""
    if power_cut:
        rounds = Tally("kill -9, then power cut")
    else:
        rounds = Tally("kill -9 at random moments", lost=0)
    last = Tally("… then one run to the end")
    with FakePutio() as fake:
        account = build_account(
            fake, args.size_mb * MB, layout_with_small(args.small_files, args.seed)
        )
        fake.node_bytes_per_second = args.rate_mb * MB
        root = work / ("power-cut" if power_cut else "kill")
        root.mkdir()
        downloads, staging = root / "downloads", root / "downloads" / STAGING
        copies = root / "synced" if power_cut else None
        config = config_for(root, fake)
        rng = random.Random(args.seed)
        held: Spans = {}
        lost: Spans = {}
        seen: dict[str, tuple[int, int]] = {}
        for at in sorted(rng.uniform(0, account.total) for _ in range(args.rounds)):
            if time.monotonic() > deadline:
                break
            fake.clear_requests()
            process, log = spawn_sync(config, root, rounds.runs + 1, copies)
            killed = kill_at(process, downloads, int(at), rng)
            if killed and copies is not None:
                cut_power(staging, copies)
            again, held = asked_again(fake, held), held_on_disk(staging)
            if not power_cut:  # a power cut drops the unclaimed bytes on purpose
                rounds.lost = (rounds.lost or 0) + refetched_from_disk(fake, lost)
                lost = unclaimed(account, staging)
            bad = visible_problems(account, downloads, seen)
            rounds.unverified += bad
            rounds.count(_kill_verdict(killed, process.returncode, again, bad, log))
            note(f"kill round {rounds.runs}: {'killed' if killed else 'ended'}, {at / MB:.0f} MB")
        fake.clear_requests()
        process, log = spawn_sync(config, root, 0, copies)
        code = process.wait()
        if not power_cut:
            rounds.lost = (rounds.lost or 0) + refetched_from_disk(fake, lost)
        missing, last.corrupted = final_problems(account, downloads)
        verdict = _final_verdict(code, asked_again(fake, held), missing + last.corrupted, root)
        last.count(verdict and f"{verdict}\n{output_tail(log)}")
        rounds.refetched = fake.node_bytes_sent - account.total
    return [rounds, last]


def spawn_sync(
    config: Path, root: Path, number: int, copies: Path | None = None
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start ``putio-mirror sync`` with its output (and crash reports) in ``root``; with
    ``copies``, its syncs record what the disk holds there (see ``cut_power``)."""
    log = root / f"run-{number}.log"
    env = child_env() | {"XDG_STATE_HOME": str(root / "xdg-state")}
    argv = [*putio_mirror_command(), "--config", str(config), "sync"]
    if copies is not None:
        copies.mkdir(exist_ok=True)
        env |= {"BENCH_SYNCED_DIR": str(copies)}
        argv = [sys.executable, "-c", _RECORDING_SYNC, *argv[-3:]]
    with log.open("wb") as output:
        # In ``root``: a ``python -c`` child imports putio_mirror as the entry point does,
        # not from whatever folder this script was started in.
        return subprocess.Popen(argv, cwd=root, env=env, stdout=output, stderr=output), log


def output_tail(log: Path) -> str:
    """The end of a run's output, and of the crash report it names, if any."""
    text = log.read_text(errors="replace")
    tail = text[-1500:]
    report = re.search(r"A crash report was written to (\S+?);", text)
    if report and Path(report[1]).exists():
        tail += "\n--- crash report ---\n" + Path(report[1]).read_text(errors="replace")[-3000:]
    return tail


# -- power cut -------------------------------------------------------------------------------

# ``putio-mirror sync`` whose fetchers sync through a function that records what the disk
# holds: after each real fdatasync it copies the part to BENCH_SYNCED_DIR (no fsync of the
# copy: nothing here really loses power, the copy only has to outlive the kill -9).
_RECORDING_SYNC = """
import os, shutil, sys
from functools import partial
from pathlib import Path
from putio_mirror.app import fetchers as app
from putio_mirror.cli.main import entry
from putio_mirror.fetch.partfile import sync_data

copies = Path(os.environ["BENCH_SYNCED_DIR"])

def recording_sync(fd):
    sync_data(fd)
    part = Path(os.readlink(f"/proc/self/fd/{fd}"))
    scratch = copies / (part.name + ".tmp")
    shutil.copyfile(part, scratch)
    scratch.replace(copies / part.name)

app.Fetcher = partial(app.Fetcher, sync=recording_sync)
sys.argv[0] = "putio-mirror"
entry()
"""


def cut_power(staging: Path, copies: Path) -> None:
    """Leave every ``.part`` as a power cut right after the kill would: only the bytes of
    its last completed sync; the sidecars stay as the killed run left them.

    Why copies taken at each sync, not zeroing past what the sidecar claims: that would
    trust the claims, which are what is on trial (before this scenario existed the
    sidecar ran ahead of the disk, and zeroing past its claims never showed it). A
    segmented part was stretched to its full size first: its length survives and the
    bytes past the copy read as zeros. A sequential part grows by appending, and ext4
    (data=ordered) commits a length only with its data: it is cut to the copy's length.
    """
    for part in staging.glob("*.part"):
        copy = copies / part.name
        kept = copy.read_bytes() if copy.exists() else b""
        length = part.stat().st_size
        stretched = part.with_name(part.name + ".segments").exists()
        part.write_bytes(kept[:length].ljust(length, b"\0") if stretched else kept[:length])
    for copy in copies.glob("*.part"):
        if not (staging / copy.name).exists():
            copy.unlink()  # placed or discarded: a later part of that id starts afresh


def _kill_verdict(killed: bool, code: int | None, again: int, bad: int, log: Path) -> str | None:
    if not killed and code != 0:
        return f"a run ended by itself with exit {code}:\n{output_tail(log)}"
    if again:
        return f"{again} requests asked again for bytes on disk"
    return f"{bad} files visible unverified" if bad else None


def _final_verdict(code: int, again: int, wrong: int, root: Path) -> str | None:
    if code != 0:
        return f"the last run exited {code}"
    if again or wrong:
        return f"{again} requests for bytes on disk, {wrong} files missing or corrupted"
    return None if journal_settled(root) else "actions left 'started' in the journal"


# -- fault scenarios ---------------------------------------------------------------------------


class VirtualTime:
    """A monotonic clock that moves only when someone sleeps on it (thread-safe), on which
    threads sleep side by side, as on the real clock.

    Each thread's sleeps add up on a timeline of its own, which starts where its parent's
    stood when it first reads the clock or sleeps (``on_clock`` tells a thread its parent).
    The downloads read their own timeline (``own_monotonic``): a file's "no data for N s"
    counts its own worker's waits, as on a real clock. The fake and the bench read
    ``monotonic``, the furthest timeline: put.io's outage ends once anyone has waited it
    out. (One shared timeline added up the backoffs
    of twelve workers: a file of 2,000 small ones met "no data for 239 s" after a few
    seconds of its own retries. Read from the furthest timeline, a lagging worker's file
    still counted the leader's waits and gave up at once. Scaled real time is no better:
    a real read timeout then counts many times over.) ``advance`` jumps.
    """

    def __init__(self) -> None:
        self.now = 1_000.0
        self.slept = 0.0
        self._timelines: dict[int, float] = {}
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self.now

    def own_monotonic(self) -> float:
        with self._lock:
            return self._timeline()

    def _timeline(self) -> float:
        me = threading.get_ident()
        if me not in self._timelines:
            parent = getattr(threading.current_thread(), PARENT, None)
            self._timelines[me] = self._timelines.get(parent, self.now)
        return self._timelines[me]

    def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        with self._lock:
            me = threading.get_ident()
            mine = self._timeline() + seconds
            self._timelines[me] = mine
            self.now = max(self.now, mine)
            self.slept += seconds
        time.sleep(0.0005)

    def advance(self, seconds: float) -> None:
        """Move the clock on by ``seconds``; every thread's timeline starts from there."""
        with self._lock:
            self.now += seconds
            self._timelines.clear()


PARENT = "_virtual_time_parent"


@contextmanager
def on_clock(clock: VirtualTime) -> Iterator[None]:
    """Within this block, the put.io client and fetchers that ``app`` builds use ``clock``,
    and each new thread knows the thread that made it (its timeline starts from there)."""
    made = threading.Thread.__init__

    def knows_parent(thread: threading.Thread, *args: Any, **kwargs: Any) -> None:
        made(thread, *args, **kwargs)
        setattr(thread, PARENT, threading.get_ident())

    with ExitStack() as stack:
        stack.enter_context(patch.object(threading.Thread, "__init__", knows_parent))
        stack.enter_context(
            patch.object(app, "PutioClient", partial(PutioClient, sleep=clock.sleep))
        )
        for name in ("Fetcher", "Downloader"):
            if hasattr(app_fetchers, name):
                built = getattr(app_fetchers, name)
                fetcher = partial(built, sleep=clock.sleep, monotonic=clock.own_monotonic)
                stack.enter_context(patch.object(app_fetchers, name, fetcher))
        yield


@dataclass
class Round:
    """One round of a fault scenario: a fresh fake, account, folders and clock."""

    fake: FakePutio
    account: Account
    root: Path
    rng: random.Random
    clock: VirtualTime = field(default_factory=VirtualTime)
    unverified: int = 0
    seen: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def downloads(self) -> Path:
        return self.root / "downloads"

    def configure(self, **download: object) -> None:
        config_for(self.root, self.fake, **{"read_timeout_seconds": 0.5} | download)

    def sync(self) -> tuple[int, str]:
        """Run ``putio-mirror sync`` in this process; return its exit code and stderr."""
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = cli_main(["--config", str(self.root / "mirror.yaml"), "sync"])
        self.unverified += visible_problems(self.account, self.downloads, self.seen)
        return code, err.getvalue()


Scenario = Callable[[Round, int], str | None]


def _exit(code: int, err: str, wanted: int) -> str | None:
    return None if code == wanted else f"exit {code}, not {wanted}: {err.strip()[-300:]}"


def resets(r: Round, number: int) -> str | None:
    for file_id, size in r.account.sizes.items():
        every = r.rng.randint(2, 5) * MB
        r.fake.node_fault(file_id, reset_after=every, times=max(1, size // every))
    return _exit(*r.sync(), 0)


def stalls(r: Round, number: int) -> str | None:
    for file_id, size in r.account.sizes.items():
        r.fake.node_fault(file_id, stall_after=r.rng.randint(1, max(1, size - 1)), times=1)
    return _exit(*r.sync(), 0)


def one_use_urls(r: Round, number: int) -> str | None:
    r.fake.url_max_uses = 1
    for file_id, size in r.account.sizes.items():
        r.fake.node_fault(file_id, reset_after=max(1, size // 3), times=2)
    return _exit(*r.sync(), 0)


def server_errors(r: Round, number: int) -> str | None:
    status, json_body = (500, 502, 503)[number % 3], number % 2 == 0
    r.fake.inject("/v2/files/*/url", status=status, times=3, json_body=json_body)
    for file_id in r.account.sizes:
        r.fake.node_fault(file_id, status=status, times=2)
    return _exit(*r.sync(), 0)


def _outage_at_first_byte(r: Round, seconds: float) -> None:
    """Every file's first answer breaks off after a third; the outage starts at the node's
    first request for a file of 1 MiB or more, which is still answered up to that third:
    bytes are on disk for the outage to keep (a small file is written whole at its end)."""
    for file_id, size in r.account.sizes.items():
        r.fake.node_fault(file_id, reset_after=max(1, size // 3), times=1)
    large = {str(file_id) for file_id, size in r.account.sizes.items() if size >= MB}
    r.fake.on_request = _once(lambda: r.fake.outage(seconds, r.clock.monotonic), large)


def outage_2_minutes(r: Round, number: int) -> str | None:
    r.configure(max_outage_seconds=300)
    _outage_at_first_byte(r, 120)
    reason = _exit(*r.sync(), 0)
    return reason or (None if r.clock.slept >= 120 else "the outage was not waited out")


def outage_too_long(r: Round, number: int) -> str | None:
    _outage_at_first_byte(r, 3_600)
    code, err = r.sync()
    held = held_on_disk(r.downloads / STAGING)
    first = None
    if code != 1 or "got no data" not in err:
        first = f"exit {code} without the outage message: {err.strip()[-300:]}"
    elif not held:
        first = "no bytes were kept"
    r.clock.advance(3_600)
    then = _resumes(r, held)
    return first or then


def _resumes(r: Round, held: Spans) -> str | None:
    """Run again; say why not if it fails or asks the node again for bytes on disk."""
    r.fake.clear_requests()
    reason = _exit(*r.sync(), 0)
    return reason or _none_if_zero(asked_again(r.fake, held), "requests for bytes on disk")


def storm_429(r: Round, number: int) -> str | None:
    r.fake.inject("/v2/transfers/list", status=429, times=2, retry_after="1")
    r.fake.inject("/v2/files/list", status=429, times=2, retry_after="1")
    tiny = partial(PutioClient, backoff=Backoff(base=0.01, cap=60.0))
    with patch.object(app, "PutioClient", tiny):  # only Retry-After may make it wait
        reason = _exit(*r.sync(), 0)
    api = [request for request in r.fake.requests if request.host == "api"]
    # The two listings are asked at once: each is retried on its own, after its own 429.
    early = sum(
        later.received_at - earlier.received_at < 1.0
        for path in ("/v2/transfers/list", "/v2/files/list")
        for earlier, later in pairwise(request for request in api if request.path == path)
        if earlier.status == 429
    )
    return reason or _none_if_zero(early, "requests sent before Retry-After")


def revoked_token(r: Round, number: int) -> str | None:
    for file_id, size in r.account.sizes.items():
        r.fake.node_fault(file_id, reset_after=max(1, size // 3), times=1)
    r.fake.on_request = _once(r.fake.revoke_token)
    code, err = r.sync()
    refused = [request.path for request in r.fake.requests if request.status == 401]
    held = held_on_disk(r.downloads / STAGING)
    first = None
    # Links are asked for on up to AUTO_MAX_FILES threads at once: those in flight when put.io
    # first refused the token each meet a 401; none may be asked again, nor one more sent.
    if code != 4 or "Hint:" not in err or not 1 <= len(refused) <= AUTO_MAX_FILES:
        first = f"exit {code}, {len(refused)} answers 401: {err.strip()[-200:]}"
    elif len(set(refused)) != len(refused):
        first = f"a refused request was sent again: {sorted(refused)}"
    elif not held or not journal_settled(r.root):
        first = "no bytes kept" if not held else "actions left 'started'"
    r.fake.on_request = None
    r.fake.restore_token()
    then = _resumes(r, held)
    return first or then


def _settled(r: Round) -> str | None:
    return None if journal_settled(r.root) else "actions left 'started' in the journal"


def _none_if_zero(count: int, what: str) -> str | None:
    return f"{count} {what}" if count else None


def _once(
    action: Callable[[], None], files: set[str] | None = None
) -> Callable[[LoggedRequest], None]:
    """An ``on_request`` hook that runs ``action`` when the node gets its first request (for
    one of ``files``, ids, if given); that request is still answered."""
    fired = threading.Event()

    def hook(request: LoggedRequest) -> None:
        ours = request.host == "node" and (
            files is None or request.path.rpartition("/")[2] in files
        )
        if ours and not fired.is_set():
            fired.set()
            action()

    return hook


SCENARIOS: list[tuple[str, Scenario, bool]] = [
    ("connection reset every few MB", resets, True),
    ("stall longer than the read timeout", stalls, True),
    ("URLs that work once, with resets", one_use_urls, True),
    ("500/502/503, JSON or HTML, URL route and node", server_errors, True),
    ("outage of 2 minutes", outage_2_minutes, True),
    ("outage longer than max_outage_seconds", outage_too_long, True),
    ("429 storm with Retry-After (real time)", storm_429, False),
    ("token revoked mid-run (401)", revoked_token, True),
]


def fault_rows(args: argparse.Namespace, work: Path, deadline: float) -> list[Tally]:
    rows = []
    for name, scenario, virtual in SCENARIOS:
        if args.only and args.only not in name:
            continue
        tally = Tally(name)
        for number in range(args.fault_rounds):
            if time.monotonic() > deadline and tally.runs:
                break
            with scratch_dir(work) as root, FakePutio() as fake:
                layout = layout_with_small(args.small_files, args.seed)
                account = build_account(fake, args.fault_size_mb * MB, layout)
                fake.node_bytes_per_second = args.rate_mb * MB
                r = Round(fake, account, root, random.Random(args.seed * 1000 + number))
                r.configure()
                with on_clock(r.clock) if virtual else ExitStack():
                    reason = scenario(r, number)
                reason = reason or _settled(r)
                missing, corrupted = final_problems(account, r.downloads)
                tally.unverified += r.unverified
                tally.corrupted += corrupted
                tally.refetched += fake.node_bytes_sent - account.total
                tally.count(reason or _none_if_zero(missing, "files missing at the end"))
            note(f"{name}: round {tally.runs}: {reason or 'passed'}")
        rows.append(tally)
    return rows


def run(args: argparse.Namespace) -> None:
    print_header("faults")
    start = time.monotonic()
    parts = set(args.parts.split(","))
    with scratch_dir(args.workdir) as work:
        need_free_space(work, args.size_mb * MB * 3)
        rows = []
        kills = [power for power, name in ((False, "kill"), (True, "power-cut")) if name in parts]
        for number, power in enumerate(kills, start=1):
            share = 0.6 * number / len(kills)
            rows += kill_rounds(args, work, start + args.time_limit * share, power)
        if "faults" in parts:
            rows += fault_rows(args, work, start + args.time_limit * 0.8)
        changes = (
            _remote_change(args, work, start + args.time_limit) if "remote-change" in parts else []
        )
    title = (
        f"kill -9: {human_size(args.size_mb * MB)} in {len(LAYOUT)} files"
        f"{f' and {args.small_files} small ones' if args.small_files else ''}, node "
        f"{args.rate_mb} MB/s per connection; faults: {args.fault_size_mb} MB per round; "
        f"{time.monotonic() - start:.0f} s in all"
    )
    if rows:
        print_table(title, HEADERS, [row.row() for row in rows])
    if changes:
        from remote_change import HEADERS as CHANGE_HEADERS

        change_title = (
            f"remote change: {args.change_size_mb} MB in {len(LAYOUT)} files to start, "
            "delete_remote_after on"
        )
        print_table(change_title, CHANGE_HEADERS, [row.row() for row in changes])
    failures = [f"{row.scenario}: {failure}" for row in rows for failure in row.failures]
    failures += [f"{row.scenario}: {failure}" for row in changes for failure in row.failures]
    if failures:
        print("\nFailures:\n" + "\n".join(f"- {failure}" for failure in failures))


def _remote_change(args: argparse.Namespace, work: Path, deadline: float) -> list[Any]:
    # Imported here: remote_change builds on this module's helpers.
    from remote_change import remote_change_rows

    return list(remote_change_rows(args, work, deadline))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--rounds", type=int, default=100, help="kill -9 rounds (100)")
    parser.add_argument("--size-mb", type=int, default=300, help="kill -9 account, MB (300)")
    parser.add_argument("--rate-mb", type=float, default=20, help="node MB/s per connection")
    parser.add_argument("--fault-rounds", type=int, default=3, help="rounds per fault (3)")
    parser.add_argument("--fault-size-mb", type=int, default=40, help="fault account, MB (40)")
    parser.add_argument("--time-limit", type=float, default=600, help="seconds in all (600)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    parser.add_argument(
        "--small-files", type=int, default=0, help="add this many files of 512 B-4 KiB (0)"
    )
    parser.add_argument(
        "--only", default="", help="only the fault scenarios whose name holds this text"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="temp folders go here")
    parser.add_argument("--change-rounds", type=int, default=100, help="remote-change rounds")
    parser.add_argument("--change-size-mb", type=int, default=60, help="remote-change account")
    parser.add_argument(
        "--parts",
        default="kill,power-cut,remote-change,faults",
        help="which to run (kill,power-cut,remote-change,faults)",
    )
    args = parser.parse_args(argv)
    return main_guard(lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
