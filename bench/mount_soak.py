"""Weeks of ``putio-mirror mount`` under a media server in minutes: does it stay the same size?

The mount is left mounted for weeks under Plex or Jellyfin. This mounts a ``FakePutio``
holding a few thousand files (``--files``) as users run it (a child process,
``mount --foreground``), its listing refreshed every ``--refresh`` seconds, and for
``--minutes`` plays at it what such a server does:

- a library scanner: ``find`` over the whole tree, and a walk that ``stat``s every file;
- probes: the head and the tail of random files (what ffprobe reads of a new episode),
  several at once;
- players: two readers each reading a random larger file in order, at a player's pace;
- put.io changing under it: files added, renamed and deleted between two refreshes of
  the mount's listing (reads of a file deleted meanwhile may fail: they are counted);
- links expiring: every node link serves ``LINK_USES`` requests, then answers 410.

Every 5 s it reads the mount process's resident memory, open file descriptors and
threads from ``/proc``; it prints them minute by minute, and the growth from the first
minute to the last. Targets: memory grows less than ``MAX_RSS_GROWTH_MB`` beyond what
the blocks held in memory may still take (``MEMORY_BLOCKS_MB``: the read-ahead window,
two blocks more and eight spare buffers, filled as players' windows grow; the disk
cache, ``CACHE_MB``, is a file and takes no RSS), no descriptor or thread is left behind
(``MAX_FD_GROWTH``, ``MAX_THREAD_GROWTH``: a few for work in flight at either end).

    .venv/bin/python bench/mount_soak.py [--minutes 10] [--files 3000] [--refresh 5]
"""

from __future__ import annotations

import errno
import os
import random
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from common import (
    BenchError,
    base_parser,
    child_env,
    main_guard,
    note,
    print_header,
    putio_mirror_command,
    scratch_dir,
    tool_path,
    write_config,
)
from sampling import SAMPLE_EVERY, Sample, growth, print_minutes, print_verdicts, sample

from putio_mirror.fakeputio import FakePutio

MIB = 1024 * 1024
CACHE_MB = 64
READ_AHEAD_MB = 32
#: blocks of 1 MiB in memory at most: the window (at most half the cache), two more
#: (``RemoteReads``) and the spare buffers (``blocks._SPARE_MOST``)
MEMORY_BLOCKS_MB = min(READ_AHEAD_MB, CACHE_MB // 2) + 2 + 8
MAX_RSS_GROWTH_MB = 20.0
FOLDERS = 50
#: requests one node link serves before it expires (put.io's lifetime is not known)
LINK_USES = 20
#: every this many files is a film the players read in order; the others are episodes
FILM_EVERY = 100
PROBE_BYTES = 64 * 1024
#: a player reads 1 MiB this often: ~16 MB/s, a high-bitrate film's pace
PLAYER_PAUSE = 0.06
#: the errors a read of a file deleted or renamed on put.io meanwhile may end with
_CHANGED = frozenset({errno.ENOENT, errno.EIO})


@dataclass
class Tally:
    """What the media server did, counted by its threads."""

    walks: int = 0
    probes: int = 0
    played_mb: float = 0.0
    changes: int = 0
    failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **counts: float) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    @property
    def reads(self) -> int:
        return self.probes + int(self.played_mb)


def fill(fake: FakePutio, files: int, chooser: random.Random) -> tuple[list[int], list[int]]:
    """Given the fake, put ``files`` files in ``FOLDERS`` folders; return the folders'
    ids and the files'."""
    folders = [fake.add_folder(f"Show {n:02d}") for n in range(FOLDERS)]
    return folders, [add_one(fake, folders, number, chooser) for number in range(files)]


def add_one(fake: FakePutio, folders: list[int], number: int, chooser: random.Random) -> int:
    """Add an episode (1–8 MiB) or, every ``FILM_EVERY``, a film (48–96 MiB)."""
    film = number % FILM_EVERY == 0
    size = chooser.randint(48, 96) * MIB if film else chooser.randint(1, 8) * MIB
    name = f"{'Film' if film else 'Episode'} {number:05d}.mkv"
    return fake.add_file(name, folders[number % len(folders)], size=size)


@contextmanager
def mounted(config: Path, root: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    """Mount with ``config`` at ``root/mnt``; yield it and the process; always unmount."""
    mount_point = root / "mnt"
    mount_point.mkdir()
    log = (root / "mount.log").open("wb")
    argv = [*putio_mirror_command(), "--config", str(config), "mount", "--foreground"]
    process = subprocess.Popen(
        [*argv, str(mount_point)], stdout=log, stderr=subprocess.STDOUT, env=child_env()
    )
    try:
        deadline = time.monotonic() + 120
        while not os.path.ismount(mount_point):
            if process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the mount did not come up: see {root}/mount.log")
            time.sleep(0.05)
        yield mount_point, process
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if os.path.ismount(mount_point):  # it ended without unmounting (killed)
            subprocess.run(["fusermount3", "-u", "-z", str(mount_point)], check=False)
        log.close()


def files_in(mount_point: Path) -> list[Path]:
    return [
        Path(here) / name
        for here, _, names in os.walk(mount_point)
        for name in names
        if name.endswith(".mkv")
    ]


def tolerated(error: OSError) -> bool:
    """A read of a file put.io changed since the last listing may fail; nothing else may."""
    return error.errno in _CHANGED


class MediaServer:
    """The scanner, the probes, the players and put.io's changes, each in its threads."""

    def __init__(
        self, fake: FakePutio, mount_point: Path, folders: list[int], ids: list[int]
    ) -> None:
        self.fake, self.mount_point, self.folders, self.ids = fake, mount_point, folders, ids
        self.tally = Tally()
        self.stop = threading.Event()
        self.errors: list[str] = []
        self._known = files_in(mount_point)
        self._next_number = len(ids)
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        jobs: list[tuple[str, Callable[[random.Random], None]]] = [
            ("scanner", self._scan),
            *[(f"probe-{n}", self._probe) for n in range(4)],
            *[(f"player-{n}", self._play) for n in range(2)],
            ("put.io", self._change),
        ]
        for number, (name, job) in enumerate(jobs):
            thread = threading.Thread(
                target=self._run, args=(job, random.Random(number)), name=name, daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def end(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(60)

    def _run(self, job: Callable[[random.Random], None], chooser: random.Random) -> None:
        while not self.stop.is_set():
            try:
                job(chooser)
            except OSError as error:
                if not tolerated(error):
                    self.errors.append(f"{threading.current_thread().name}: {error}")
                    self.stop.wait(1.0)
                self.tally.add(failed=1)
            except Exception as error:  # reported at the end: the soak goes on
                self.errors.append(f"{threading.current_thread().name}: {error!r}")
                self.stop.wait(1.0)

    def _scan(self, chooser: random.Random) -> None:
        """``find``, then a walk ``stat``-ing every file, then a pause before the next."""
        find = [tool_path("find"), str(self.mount_point), "-type", "f"]
        subprocess.run(find, check=True, stdout=subprocess.DEVNULL, timeout=300)
        seen = files_in(self.mount_point)
        for path in seen:
            try:
                path.stat()
            except FileNotFoundError:  # deleted on put.io since the walk listed it
                continue
        self._known = seen
        self.tally.add(walks=1)
        self.stop.wait(chooser.uniform(5, 15))

    def _probe(self, chooser: random.Random) -> None:
        """Read a random file's head and tail, as ffprobe does with a new episode."""
        path = chooser.choice(self._known)
        with path.open("rb") as handle:
            handle.read(PROBE_BYTES)
            size = os.fstat(handle.fileno()).st_size
            handle.seek(max(0, size - PROBE_BYTES))
            handle.read(PROBE_BYTES)
        self.tally.add(probes=1)
        self.stop.wait(chooser.uniform(0.05, 0.3))

    def _play(self, chooser: random.Random) -> None:
        """Read a random film in order, 1 MiB at a time at a player's pace, maybe only a
        part of it (stopped, or a seek further on)."""
        films = [path for path in self._known if path.name.startswith("Film")]
        path = chooser.choice(films or self._known)
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(chooser.choice([0, 0, size // 3]))
            stop_at = chooser.choice([size, size, size // 2])
            while handle.tell() < stop_at and not self.stop.is_set():
                got = len(handle.read(MIB))
                if not got:
                    break
                self.tally.add(played_mb=got / MIB)
                time.sleep(PLAYER_PAUSE)

    def _change(self, chooser: random.Random) -> None:
        """Every few seconds, add, rename and delete a file on put.io."""
        doomed, renamed = chooser.sample(self.ids, 2)
        self.ids.append(add_one(self.fake, self.folders, self._next_number, chooser))
        self._next_number += 1
        self.fake.rename(renamed, f"Renamed {renamed} {chooser.randrange(10**6)}.mkv")
        self.fake.delete_file(doomed)
        self.ids.remove(doomed)
        self.tally.add(changes=3)
        self.stop.wait(chooser.uniform(1, 4))


def soak(root: Path, minutes: float, files: int, refresh: float) -> tuple[list[Sample], Tally]:
    chooser = random.Random(7)
    with FakePutio() as fake:
        note(f"putting {files} files on the fake put.io…")
        folders, ids = fill(fake, files, chooser)
        fake.url_max_uses = LINK_USES
        mount = {
            "cache_max_mb": CACHE_MB,
            "read_ahead_max_mb": READ_AHEAD_MB,
            "refresh_seconds": refresh,
        }
        config = write_config(root, fake, mount=mount)
        with mounted(config, root) as (mount_point, process):
            server = MediaServer(fake, mount_point, folders, ids)
            server.start()
            try:
                samples = _watch(process, server, root, minutes)
            finally:
                server.end()
            if server.errors:
                shown = "\n".join(server.errors[:10])
                raise BenchError(f"{len(server.errors)} unexpected errors, the first:\n{shown}")
            return samples, server.tally


def _watch(
    process: subprocess.Popen[bytes], server: MediaServer, root: Path, minutes: float
) -> list[Sample]:
    started = next_sample = time.monotonic()
    samples: list[Sample] = []
    while time.monotonic() - started < minutes * 60:
        if process.poll() is not None:
            raise BenchError(f"the mount ended with exit {process.returncode}: see {root}")
        samples.append(sample(process.pid, started, server.tally.reads))
        if len(samples) % 12 == 0:
            note(f"{samples[-1].at / 60:.0f} min: {samples[-1].rss_mb:.0f} MB, "
                 f"{samples[-1].fds} fds, {samples[-1].threads} threads")  # fmt: skip
        next_sample += SAMPLE_EVERY
        time.sleep(max(0.0, next_sample - time.monotonic()))
    return samples


def main() -> None:
    parser = base_parser(__doc__ or "", rounds=1)
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes (default 10)")
    parser.add_argument("--files", type=int, default=3000, help="files on put.io (default 3000)")
    parser.add_argument(
        "--refresh", type=float, default=5.0, help="mount.refresh_seconds (default 5)"
    )
    options = parser.parse_args()
    if options.minutes < 3:
        raise BenchError("--minutes must be 3 or more: the first and last minutes are compared")
    tool_path("fusermount3")
    with scratch_dir(options.workdir) as root:
        samples, tally = soak(root, options.minutes, options.files, options.refresh)
    print_header("mount_soak")
    print_minutes(
        f"putio-mirror mount for {options.minutes:g} min over {options.files} files, "
        f"listing refreshed every {options.refresh:g} s, cache_max_mb {CACHE_MB}",
        "reads (probes + MiB played)",
        samples,
    )
    print(
        f"\n{tally.walks} scans, {tally.probes} probes, {tally.played_mb:.0f} MiB played, "
        f"{tally.changes} changes on put.io, {tally.failed} reads failed on a changed file"
    )
    print("\nfrom the first minute to the last:")
    beyond = (
        f" ({MAX_RSS_GROWTH_MB:g} MB beyond the {MEMORY_BLOCKS_MB} MiB blocks may take in memory)"
    )
    print_verdicts(growth(samples), MAX_RSS_GROWTH_MB + MEMORY_BLOCKS_MB, beyond)


if __name__ == "__main__":
    raise SystemExit(main_guard(main))
