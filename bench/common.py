"""Shared helpers of the benchmark scripts (never tests: they print tables).

Measured child processes (wall time and CPU seconds from ``os.wait4``, peak RSS
from GNU time), contenders run in alternation, medians, Markdown tables, temp
folders, and a putio-mirror config pointing at a running ``FakePutio``. The
tools compared with, and the nginx, are in ``tools.py``.
"""

from __future__ import annotations

import argparse
import compileall
import functools
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from putio_mirror.core.units import human_bytes
from putio_mirror.fakeputio import FakePutio

BENCH_PREFIX = "putio-mirror-bench-"
human_size = human_bytes  # the name the scripts import (an explicit re-export for mypy)
MB = 1_000_000
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


class BenchError(Exception):
    """A benchmark could not run or a contender failed; the message says which and why."""


@dataclass(frozen=True)
class Measurement:
    """One child process: wall seconds, CPU seconds (user+sys), peak RSS and its output;
    ``host_cpu``: the CPU seconds this process (a FakePutio's servers) spent meanwhile."""

    wall: float
    cpu: float
    max_rss_kib: int
    output: str = ""
    host_cpu: float = 0.0
    #: the CPU ms one new file cost in the folder the command made its files in, just
    #: before it ran (``new_file_price``), where measured
    new_file_ms: float | None = None

    @property
    def rss_mb(self) -> float:
        return self.max_rss_kib * 1024 / MB


Runner = Callable[[Path], Measurement]


# -- measuring -----------------------------------------------------------------------


def run_measured(
    argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
) -> Measurement:
    """Given a command, run it and return its measurement; raise BenchError if it fails.

    Failing means a non-zero exit or running past ``timeout`` seconds (then it is killed).
    The command runs under GNU time, which reports its peak RSS: a child forked from
    this (big) Python process would otherwise inherit its RSS as the child's ``ru_maxrss``
    floor, since Linux keeps the pre-exec high-water mark. CPU is the ``wait4`` figure
    (the command plus GNU time's negligible own).
    """
    with scratch_dir() as folder:
        stats, out, err = folder / "stats", folder / "stdout", folder / "stderr"
        wrapped = [tool_path("time"), "-f", "%M", "-o", str(stats), "--", *argv]
        with out.open("wb") as stdout, err.open("wb") as stderr:
            host_start = time.process_time()
            process = subprocess.Popen(
                wrapped, stdout=stdout, stderr=stderr, env=env, start_new_session=True
            )
            wall, code, cpu, timed_out = _wait(process, timeout)
            host_cpu = time.process_time() - host_start
        text, errors = out.read_text(errors="replace"), err.read_text(errors="replace")
        if timed_out or code != 0:
            why = f"timed out after {timeout:g} s" if timed_out else "failed"
            tail = (text + errors)[-3000:]
            raise BenchError(f"{' '.join(argv)} {why} (exit {code}):\n{tail}")
        max_rss_kib = int(stats.read_text().split()[-1])
    return Measurement(wall, cpu, max_rss_kib, text, host_cpu)


def _wait(process: subprocess.Popen[bytes], timeout: float) -> tuple[float, int, float, bool]:
    """Given a started process, reap it; return (wall s, exit code, CPU s, timed out)."""
    start = time.perf_counter()
    timed_out = threading.Event()
    timer = threading.Timer(timeout, _kill_group, (process, timed_out))
    timer.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    except BaseException:  # Ctrl-C does not reach the command's own session: end it here
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    finally:
        timer.cancel()
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return wall, process.returncode, usage.ru_utime + usage.ru_stime, timed_out.is_set()


def _kill_group(process: subprocess.Popen[bytes], timed_out: threading.Event) -> None:
    """Kill the session we started for the command: GNU time and the command under it."""
    if process.returncode is None:
        timed_out.set()
        os.killpg(process.pid, signal.SIGKILL)


def tool_path(command: str) -> str:
    """Given a command name, return its path; raise BenchError if it is not installed."""
    path = find_tool(command)
    if path is None:
        raise BenchError(f"{command} is not installed (ensure_tools() installs it)")
    return path


def alternate(
    contenders: Sequence[tuple[str, Runner]],
    rounds: int,
    workdir: Path | None,
    *,
    remove_at_end: bool = False,
) -> dict[str, list[Measurement]]:
    """Given named runners, run them A B A B … ``rounds`` times, each in a fresh temp dir,
    after one unmeasured warm-up round.

    Alternating spreads drifts (page cache, CPU clock, other load) over every contender.
    The warm-up absorbs what only the first run after set-up pays: on this VM whoever
    went first took 2-4x longer, almost all of it system time (curl: 7.7 s against
    3.1 s), whichever contender it was.

    ``remove_at_end`` keeps every round's folder until the last round: for many small
    files. ext4 without a journal (this VM's disk) skips inodes freed in the last
    60-360 s when it creates a file, reading each one's inode block to find out, so a
    round that follows the deletion of 10,000 files spent up to twice the system time
    of one that does not, whoever ran it. A real sync does not follow such a deletion.
    """
    results: dict[str, list[Measurement]] = {name: [] for name, _ in contenders}
    with ExitStack() as kept:
        for number in range(rounds + 1):
            for name, runner in contenders:
                where = kept.enter_context(scratch_dir(workdir)) if remove_at_end else None
                measurement = _one_round(runner, workdir, where)
                if number == 0:
                    note(f"warm-up {name}: {measurement.wall:.2f} s (not counted)")
                    continue
                results[name].append(measurement)
                note(f"round {number}/{rounds} {name}: {measurement.wall:.2f} s")
    return results


def _one_round(runner: Runner, workdir: Path | None, where: Path | None) -> Measurement:
    # Dirty pages of earlier rounds (and of the served file, just written) are flushed
    # first, so no round pays for another's write-back. putio-mirror's own fsync of what
    # it downloaded stays inside its timed run.
    os.sync()
    if where is not None:
        return runner(where)
    with scratch_dir(workdir) as fresh:
        return runner(fresh)


#: what a new file's name starts with in ``new_file_price``: never a name a contender makes
PROBE_PREFIX = "bench-probe-"


def new_file_price(folder: Path, count: int = 200) -> float:
    """Given the folder a contender is about to make its files in, return the CPU
    milliseconds (the kernel's, nearly all) one new empty file costs there now, over
    ``count`` files made and left there.

    This VM's disk is an ext4 without a journal (``/proc/fs/jbd2`` lists none): making a
    file, the kernel skips every inode freed in the last few minutes, reading each one's
    inode block to find out. One new file so cost 0.02 ms in one fresh folder and 1.1 ms
    in another minutes later, by where earlier deletions had fallen (loops of 200
    ``os.open(O_CREAT)`` in folders made by ``mkdtemp``). The same putio-mirror over
    1,000 files of 1 MiB spent 1.40 ms of system CPU a file where a new file cost 0.78 ms,
    and 0.82–0.90 ms where it cost 0.02–0.04 ms (user CPU 1.16–1.32 ms both ways): a
    share of "CPU a file" set by the disk's past, not by the contender. It is measured
    in the very folder, and the files are left: deleting them would add to what the next
    new file skips. A journaled ext4 (a NAS's) skips nothing.
    """
    folder.mkdir(parents=True, exist_ok=True)
    before = time.thread_time()  # user and system time of this thread alone
    for number in range(count):
        made = os.open(folder / f"{PROBE_PREFIX}{number}", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        os.close(made)
    return (time.thread_time() - before) * 1000 / count


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


# -- printing ------------------------------------------------------------------------


def note(message: str) -> None:
    """Say what is happening, on stderr, so stdout holds only the tables."""
    print(message, file=sys.stderr, flush=True)


def print_header(name: str) -> None:
    """Print what ran where: the script, putio-mirror's version, Python, OS and CPUs."""
    from putio_mirror import __version__

    machine = f"{platform.system()} {platform.release()} {platform.machine()}"
    print(
        f"# bench/{name}.py — putio-mirror {__version__}, Python {platform.python_version()}, "
        f"{machine}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')}"
    )


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Given a title, headers and rows of cells, print a Markdown table."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rules = [
        "-" * (width + 2) if i == 0 else "-" * (width + 1) + ":" for i, width in enumerate(widths)
    ]
    print(f"\n{title}\n")
    print(line(headers))
    print("|" + "|".join(rules) + "|")
    for row in rows:
        print(line(row))


def summary_rows(
    results: Mapping[str, list[Measurement]], size: int | None = None
) -> list[list[str]]:
    """Given measurements per contender, return rows: name, medians, and every wall time."""
    rows = []
    for name, runs in results.items():
        wall = median(run.wall for run in runs)
        speed = f"{size / wall / MB:.1f}" if size else "-"
        rows.append(
            [
                name,
                f"{wall:.3f}",
                speed,
                f"{median(run.cpu for run in runs):.2f}",
                f"{median(run.rss_mb for run in runs):.0f}",
                " ".join(f"{run.wall:.2f}" for run in runs),
            ]
        )
    return rows


SUMMARY_HEADERS = ["contender", "wall s", "MB/s", "CPU s", "peak RSS MB", "wall s per round"]
RATIO_HEADERS = ["ratio", "wall", "MB/s", "CPU s", "peak RSS"]


def ratio_rows(
    results: Mapping[str, list[Measurement]], pairs: Sequence[tuple[str, str]]
) -> list[list[str]]:
    """Given measurements and (a, b) pairs, return rows of a's medians divided by b's."""
    rows = []
    for first, second in pairs:
        a, b = results[first], results[second]
        wall = median(run.wall for run in a) / median(run.wall for run in b)
        cpu = _safe_ratio(median(run.cpu for run in a), median(run.cpu for run in b))
        rss = median(run.rss_mb for run in a) / median(run.rss_mb for run in b)
        rows.append([f"{first} / {second}", f"{wall:.2f}x", f"{1 / wall:.2f}x", cpu, f"{rss:.2f}x"])
    return rows


def _safe_ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "-"


def verdict(value: float, limit: float, unit: str, *, inclusive: bool = False) -> str:
    """Given a figure and its target (``< limit``; ``≤`` if inclusive), say met or by how much."""
    met = value <= limit if inclusive else value < limit
    if met:
        return "met"
    return f"MISSED by {value - limit:.3g} {unit} ({value / limit:.1f}x the target)"


# -- files and folders ---------------------------------------------------------------


@contextmanager
def scratch_dir(workdir: Path | None = None) -> Iterator[Path]:
    """Yield a fresh temporary folder (in ``workdir`` if given), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=BENCH_PREFIX, dir=workdir))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def parse_size(text: str) -> int:
    """Given "2G", "512MiB", "1m" or "4096", return bytes (binary units)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 512M, 2G)")
    return int(float(match[1]) * _UNITS[match[2].lower()])


def need_free_space(where: Path, size: int) -> None:
    """Raise BenchError unless ``where`` has ``size`` bytes free plus a 1 GiB margin."""
    free = shutil.disk_usage(where).free
    if free < size + 1024**3:
        raise BenchError(
            f"{where} has {human_size(free)} free; this run needs {human_size(size)} + 1 GiB "
            "(use smaller sizes or --workdir on a bigger disk)"
        )


def export_file(fake: FakePutio, file_id: int, path: Path) -> None:
    """Given a fake's file id, write exactly the bytes its node would serve to ``path``."""
    with path.open("wb") as out:
        for piece in fake.file_pieces(file_id):
            out.write(piece)


def file_crc32(path: Path) -> str:
    crc = 0
    with path.open("rb") as source:
        while block := source.read(8 * 1024 * 1024):
            crc = zlib.crc32(block, crc)
    return f"{crc:08x}"


def check_file(path: Path, size: int, crc32: str | None = None) -> None:
    """Raise BenchError unless ``path`` holds ``size`` bytes (and the CRC32, if given)."""
    if not path.is_file() or path.stat().st_size != size:
        found = path.stat().st_size if path.is_file() else "no file"
        raise BenchError(f"{path}: expected {size} bytes, found {found}")
    if crc32 is not None and file_crc32(path) != crc32:
        raise BenchError(f"{path}: CRC32 differs from the served file's {crc32}")


# -- putio-mirror against a FakePutio ------------------------------------------------


def putio_mirror_command() -> list[str]:
    """The installed entry point next to this interpreter, else ``python -m putio_mirror``.

    Its modules are byte-compiled first, as installing a wheel does: an editable
    install under PYTHONDONTWRITEBYTECODE would otherwise compile them on every run.
    """
    _byte_compile_putio_mirror()
    script = Path(sys.executable).with_name("putio-mirror")
    return [str(script)] if script.exists() else [sys.executable, "-m", "putio_mirror"]


@functools.cache
def _byte_compile_putio_mirror() -> None:
    import putio_mirror

    compileall.compile_dir(Path(putio_mirror.__file__).parent, quiet=1)


def child_env() -> dict[str, str]:
    """This environment without anything that would point putio-mirror elsewhere."""
    drop = {"PUTIO_TOKEN", "PUTIO_MIRROR_CONFIG"}
    return {key: value for key, value in os.environ.items() if key not in drop}


def write_config(root: Path, fake: FakePutio, **sections: dict[str, object]) -> Path:
    """Given a folder and a running fake, write a config using folders in ``root``; return it."""
    token = root / "token"
    token.write_text(fake.token + "\n")
    token.chmod(0o600)
    document: dict[str, dict[str, object]] = {
        "putio": {"token_file": str(token), "api_url": fake.api_url, "upload_url": fake.upload_url},
        "paths": {
            "blackhole": str(root / "blackhole"),
            "downloads": str(root / "downloads"),
            "journal": f"sqlite:///{root / 'state' / 'journal.sqlite3'}",
        },
    }
    for name, values in sections.items():
        document.setdefault(name, {}).update(values)
    # as a real set-up has it (a missing blackhole is a "needs you", exit 11)
    Path(str(document["paths"]["blackhole"])).mkdir(parents=True, exist_ok=True)
    config = root / "mirror.yaml"
    config.write_text(yaml.safe_dump(document))
    config.chmod(0o600)
    return config


def run_putio_mirror(
    config: Path,
    *args: str,
    timeout: float,
    env: dict[str, str] | None = None,
    wrap: Sequence[str] = (),
) -> Measurement:
    """Given a config and arguments (and variables to add to the environment, a command
    to run it under), run putio-mirror measured; raise BenchError if it fails."""
    argv = [*wrap, *putio_mirror_command(), "--config", str(config), *args]
    return run_measured(argv, timeout=timeout, env=child_env() | (env or {}))


# -- external tools ------------------------------------------------------------------


def find_tool(command: str) -> str | None:
    """Given a command name, return its path, looking in the sbin folders too (nginx)."""
    return shutil.which(command) or shutil.which(command, path="/usr/sbin:/sbin")


# -- command lines -------------------------------------------------------------------


def base_parser(description: str, rounds: int = 3) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=rounds, help=f"rounds (default {rounds})")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where temp folders go (default: $TMPDIR)"
    )
    return parser


def comma_list(choices: Sequence[str]) -> Callable[[str], list[str]]:
    """Given the names an option may take, return an argparse ``type`` that reads a
    comma-separated list of them (at least one), refusing any other name."""

    def parse(text: str) -> list[str]:
        names = [name.strip() for name in text.split(",") if name.strip()]
        if not names or any(name not in choices for name in names):
            raise argparse.ArgumentTypeError(f"choose from {','.join(choices)}")
        return names

    return parse


def main_guard(run: Callable[[], None]) -> int:
    """Run a benchmark; turn BenchError into a message and exit code 1."""
    try:
        run()
    except BenchError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    return 0
