"""A real FUSE mount of the local put.io for tests: start it, wait for it, always unmount it."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from putio_mirror.fakeputio import FakePutio
from tests.mirror_env import Mirror

START_SECONDS = 30.0
_CACHESTAT = 451  # the syscall's number, the same on every Linux architecture


def fuse_missing() -> str | None:
    """Why a real mount cannot be made here, or None if it can."""
    if not Path("/dev/fuse").exists():
        return "no /dev/fuse on this machine"
    if shutil.which("fusermount3") is None:
        return "no fusermount3 (install fuse3: scripts/ensure-fuse.sh)"
    return None


def require_fuse() -> None:
    """Skip where FUSE is missing; under CI that is a failure: CI must not pass by testing less."""
    reason = fuse_missing()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"CI must test the mount, but {reason}", pytrace=False)
    pytest.skip(reason)


def unmount(mount_point: Path) -> None:
    """Unmount whatever is on ``mount_point`` (lazily if it is busy); never raises."""
    if os.path.ismount(mount_point):
        subprocess.run(["fusermount3", "-u", "-z", str(mount_point)], check=False, timeout=30)


class Mounted:
    """A running ``putio-mirror mount --foreground`` process and its mount point."""

    def __init__(self, process: subprocess.Popen[bytes], mount_point: Path, log: Path) -> None:
        self.process = process
        self.mount_point = mount_point
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def mounted(
    mirror: Mirror, at: str = "mnt", probe: str | None = None, **mount: Any
) -> Iterator[Mounted]:
    """Given a mirror set-up, mount its put.io at ``<root>/<at>`` (with ``mount:`` options);
    yield it; stop the process and unmount afterwards, whatever happened. ``probe`` is
    Python the mount process runs first (to count what it does from inside)."""
    require_fuse()
    mirror.write_config(mount=mount)
    mount_point = mirror.root / at
    mount_point.mkdir(exist_ok=True)
    log = mirror.root / f"{at}.log"
    env = {k: v for k, v in os.environ.items() if k not in {"PUTIO_TOKEN", "PYTHONUNBUFFERED"}}
    command = ["mount", "--foreground", str(mount_point)]
    start = ["-m", "putio_mirror"]
    if probe is not None:
        start = ["-c", f"{probe}\nfrom putio_mirror.cli.main import entry\nentry()"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, *start, "--config", str(mirror.config), *command],
            env=env,
            stdout=output,
            stderr=output,
        )
    handle = Mounted(process, mount_point, log)
    try:
        _wait_for_mount(handle)
        yield handle
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        unmount(mount_point)


def _wait_for_mount(handle: Mounted) -> None:
    deadline = time.monotonic() + START_SECONDS
    while not os.path.ismount(handle.mount_point):
        if handle.process.poll() is not None:
            pytest.fail(f"the mount process ended early:\n{handle.output()}")
        if time.monotonic() > deadline:
            pytest.fail(f"not mounted within {START_SECONDS} s:\n{handle.output()}")
        time.sleep(0.05)


def node_requests(fake: FakePutio, file_id: int | None = None) -> list[str]:
    """The paths of the node requests the fake received (for one file id, if given)."""
    wanted = None if file_id is None else f"/download/{file_id}"
    return [
        request.path
        for request in fake.requests
        if request.host == "node" and (wanted is None or request.path == wanted)
    ]


def api_requests(fake: FakePutio) -> list[str]:
    return [f"{r.method} {r.path}" for r in fake.requests if r.host == "api"]


def cached_pages(path: Path, read: int = 0) -> int:
    """Given a file, read its first ``read`` bytes, then return how many of its pages the
    page cache holds, asked on the same open file (FUSE drops a file's cache at each
    open). Linux >= 6.5's cachestat maps nothing; the test is skipped without it."""
    libc = ctypes.CDLL(None, use_errno=True)
    whole = (ctypes.c_uint64 * 2)(0, 0)  # offset 0, length 0: the whole file
    found = (ctypes.c_uint64 * 5)()  # nr_cache first
    descriptor = os.open(path, os.O_RDONLY)
    try:
        while read > 0 and (got := len(os.read(descriptor, min(read, 1 << 20)))):
            read -= got
        if libc.syscall(_CACHESTAT, descriptor, whole, found, 0) != 0:
            pytest.skip(f"no cachestat here: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(descriptor)
    return int(found[0])
