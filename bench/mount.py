"""``putio-mirror mount``: streaming through the mount against a download and curl.

(a) One large file (``--size``, default 512 MiB; the issue's figure is ``--size 2G``)
served by nginx (``--rate`` caps each connection, as a put.io node roughly does):
a sequential read through the mount (``dd`` to /dev/null, a fresh mount each
round, so its block cache starts empty) vs ``putio-mirror files download`` vs
``curl -o /dev/null``, alternating. (b) Time to the first byte of a 4 KiB read at 20
random offsets of that file, on a fresh mount (median, p95). (c) ``find`` over
10,000 files in 100 folders (``--files``): wall time, and the API requests the mount
made for its listing and during three walks. Throughout: the mount process's peak
RSS (VmHWM) and its block cache's largest size, sampled, against ``mount.cache_max_mb``.

    .venv/bin/python bench/mount.py [--rounds 3] [--size 512M] [--rate 20m] [--files 10000]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from common import (
    MB,
    RATIO_HEADERS,
    SUMMARY_HEADERS,
    BenchError,
    Measurement,
    alternate,
    base_parser,
    child_env,
    export_file,
    human_size,
    main_guard,
    need_free_space,
    note,
    parse_size,
    print_header,
    print_table,
    putio_mirror_command,
    ratio_rows,
    run_measured,
    run_putio_mirror,
    scratch_dir,
    summary_rows,
    tool_path,
    verdict,
    write_config,
)
from tools import ensure_tools, nginx

from putio_mirror.fakeputio import FakePutio

NAME = "big.bin"
CACHE_MB = 64
MAX_RSS_MB = 150


@dataclass
class Watch:
    """What was seen of the mount processes: peak RSS (MB) and the cache's largest size."""

    peak_rss_mb: float = 0.0
    cache_peak: int = 0
    listing_requests: list[int] = field(default_factory=list)


@contextmanager
def mounted(config: Path, where: Path, watch: Watch) -> Iterator[tuple[Path, int]]:
    """Mount with ``config`` at ``where/mnt``; yield it and the pid; unmount, noting the
    process's peak RSS and the cache's largest size (sampled every 50 ms)."""
    mount_point = where / "mnt"
    mount_point.mkdir()
    argv = [*putio_mirror_command(), "--config", str(config), "mount", "--foreground"]
    log = (where / "mount.log").open("wb")
    process = subprocess.Popen([*argv, str(mount_point)], stdout=log, stderr=log, env=child_env())
    stop = threading.Event()
    cache = where / "downloads" / ".putio-mirror-staging" / "mount-cache"
    sampler = threading.Thread(target=_sample_cache, args=(cache, watch, stop), daemon=True)
    try:
        _wait_mounted(process, mount_point, where / "mount.log")
        sampler.start()
        yield mount_point, process.pid
        watch.peak_rss_mb = max(watch.peak_rss_mb, _peak_rss_mb(process.pid))
    finally:
        stop.set()
        subprocess.run(["fusermount3", "-u", "-z", str(mount_point)], check=False)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_mounted(process: subprocess.Popen[bytes], mount_point: Path, log: Path) -> None:
    deadline = time.monotonic() + 120
    while not os.path.ismount(mount_point):
        if process.poll() is not None or time.monotonic() > deadline:
            raise BenchError(f"the mount did not come up:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


def _sample_cache(cache: Path, watch: Watch, stop: threading.Event) -> None:
    while not stop.wait(0.05):
        try:
            size = sum(entry.stat().st_size for entry in os.scandir(cache) if entry.is_file())
        except OSError:  # a block evicted between scan and stat
            continue
        watch.cache_peak = max(watch.cache_peak, size)


def _cpu_seconds(pid: int) -> float:
    """The process's user + system CPU seconds so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pid: int) -> float:
    """The process's own high-water RSS (VmHWM starts afresh at exec, unlike ru_maxrss)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / MB
    return 0.0


def streaming(args: argparse.Namespace, watch: Watch) -> None:
    """(a) and (b): the large file through the mount, files download and curl."""
    size = args.size
    with scratch_dir(args.workdir) as work, FakePutio() as fake:
        need_free_space(work, 2 * size)
        (work / "serve").mkdir()
        file_id = fake.add_file(NAME, size=size)
        note(f"writing the {human_size(size)} file that nginx serves…")
        export_file(fake, file_id, work / "serve" / f"{file_id}.bin")
        with nginx(work / "serve", rate=args.rate, workdir=args.workdir) as base:
            fake.node_base_url = base
            mount = {"cache_max_mb": CACHE_MB, "connections": args.connections}
            timeout = 120 + size / (2 * MB)

            def through_mount(where: Path) -> Measurement:
                config = write_config(where, fake, mount=mount)
                with mounted(config, where, watch) as (mount_point, pid):
                    argv = ["dd", f"if={mount_point / NAME}", "of=/dev/null", "bs=1M"]
                    before = _cpu_seconds(pid)
                    dd = run_measured([*argv, "status=none"], timeout=timeout)
                    # The mount's work is the reader's cost: its CPU and RSS are counted.
                    cpu = dd.cpu + _cpu_seconds(pid) - before
                    return Measurement(dd.wall, cpu, int(_peak_rss_mb(pid) * MB / 1024))

            def download(where: Path) -> Measurement:
                config = write_config(where, fake, download={"connections": args.connections})
                return run_putio_mirror(config, "files", "download", timeout=timeout)

            def curl(where: Path) -> Measurement:
                url = f"{base}/{file_id}.bin"
                argv = [tool_path("curl"), "-s", "-S", "-f", "-o", "/dev/null", url]
                return run_measured(argv, timeout=timeout)

            contenders = [("mount (dd)", through_mount), ("files download", download)]
            contenders.append(("curl", curl))
            results = alternate(contenders, args.rounds, args.workdir)
            offsets = first_bytes(fake, work, size, watch)
    capped = f", nginx limit_rate {args.rate}" if args.rate else ", unthrottled nginx"
    title = f"(a) one {human_size(size)} file{capped}, {args.connections} connections"
    print_table(f"{title}: medians", SUMMARY_HEADERS, summary_rows(results, size))
    pairs = [("mount (dd)", "curl"), ("mount (dd)", "files download")]
    print_table(f"{title}: ratios", RATIO_HEADERS, ratio_rows(results, pairs))
    ordered = sorted(offsets)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    print_table(
        "(b) time to the first byte, 4 KiB reads at 20 random offsets, fresh mount",
        ["median ms", "p95 ms", "max ms"],
        [[f"{ordered[len(ordered) // 2]:.1f}", f"{p95:.1f}", f"{ordered[-1]:.1f}"]],
    )


def first_bytes(fake: FakePutio, work: Path, size: int, watch: Watch) -> list[float]:
    chooser = random.Random(20)
    with scratch_dir(work) as where:
        config = write_config(where, fake, mount={"cache_max_mb": CACHE_MB})
        with mounted(config, where, watch) as (mount_point, _):
            descriptor = os.open(mount_point / NAME, os.O_RDONLY)
            try:
                times = []
                for _ in range(20):
                    offset = chooser.randrange(0, size - 4096)
                    start = time.perf_counter()
                    os.pread(descriptor, 4096, offset)
                    times.append((time.perf_counter() - start) * 1000)
            finally:
                os.close(descriptor)
    return times


def walking(args: argparse.Namespace, watch: Watch) -> None:
    """(c) find over many files, with the API requests counted."""
    with scratch_dir(args.workdir) as where, FakePutio() as fake:
        folders = [fake.add_folder(f"Show {n:03d}") for n in range(100)]
        for number in range(args.files):
            fake.add_file(f"Episode {number:05d}.mkv", folders[number % 100], b"x")
        config = write_config(where, fake, mount={"cache_max_mb": CACHE_MB})
        fake.clear_requests()
        with mounted(config, where, watch) as (mount_point, _):
            listing = len([r for r in fake.requests if r.host == "api"])
            fake.clear_requests()
            walls = []
            for _ in range(3):
                measured = run_measured(["find", str(mount_point), "-type", "f"], timeout=300)
                found = len(measured.output.splitlines())
                if found != args.files:
                    raise BenchError(f"find saw {found} files of {args.files}")
                walls.append(measured.wall)
            during = len([r for r in fake.requests if r.host == "api"])
    print_table(
        f"(c) find over {args.files} files in 100 folders, three walks",
        ["wall s per walk", "API requests for the listing", "API requests during the walks"],
        [[" ".join(f"{wall:.2f}" for wall in walls), str(listing), str(during)]],
    )
    watch.listing_requests.append(listing + during)


def run(args: argparse.Namespace) -> None:
    ensure_tools(["nginx", "curl", "time"])
    tool_path("fusermount3")
    print_header("mount")
    watch = Watch()
    streaming(args, watch)
    walking(args, watch)
    print_table(
        "(d) the mount process",
        ["peak RSS MB", "target", "largest block cache", "cache_max_mb", "bound held"],
        [
            [
                f"{watch.peak_rss_mb:.0f}",
                verdict(watch.peak_rss_mb, MAX_RSS_MB, "MB"),
                human_size(watch.cache_peak),
                str(CACHE_MB),
                "yes" if watch.cache_peak <= CACHE_MB * 1024 * 1024 else "NO",
            ]
        ],
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "mount")
    parser.add_argument("--size", type=parse_size, default="512M", help="(a) file size (512M)")
    parser.add_argument("--rate", default=None, help="nginx limit_rate per connection (none)")
    parser.add_argument("--connections", type=int, default=4, help="connections (4)")
    parser.add_argument("--files", type=int, default=10_000, help="(c) files (10000)")
    args = parser.parse_args(argv)
    return main_guard(lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
