"""The floor: the CPU a file costs for the work every mirror must do, and nothing else.

What issue 14's "≤ 2 ms of CPU a file" is measured against. For each file, in one thread
and one process, with no HTTP, no journal and no Python beyond the loop:

- ``receive``: its bytes through a loopback socket pair (the kernel's copy);
- ``crc32``: its CRC32, which put.io's checksum asks for, by the routine the mirror uses
  (zlib-ng's where it is installed, else zlib's);
- ``write + sync``: a new part file opened, written, fdatasync'ed, closed and renamed
  into another folder (staging/<id>.part → staging/verified/<id>: durable before it
  counts as verified).

Run on the folder a mirror would write to (``--workdir``): the file system sets the
price of the last line. For ``small`` (512 B–4 KiB, seeded as bench/many_files.py's) and
``1MiB``, it prints user and system CPU a file for each step, and their sum.

The sum overstates the write: each file is written from its own buffer, ~300 MiB of them,
cold in the CPU's caches, where a mirror writes what it just received into one small buffer
that stays hot. So a second table runs the data path as the mirror does, in one loop:

- ``data path``: over one TCP loopback connection (a sender thread, not counted, plays
  the node), each file received into one reused ``CHUNK`` buffer, its CRC32 taken and
  written chunk by chunk (``pwrite``), then fdatasync'ed, its cached pages dropped
  (``POSIX_FADV_DONTNEED``, as the mirror does) and renamed into place;
- ``start``: what any Python mirror built on this project's chosen libraries pays once a
  run, before its first byte: a fresh interpreter importing requests, SQLAlchemy,
  pydantic, PyYAML and click (no putio-mirror code), spread over ``--files-a-run`` files
  (1,000: bench/many_files.py's 1 MiB run).

Their sum is the floor of ``≤ 2 ms of CPU a file`` for a mirror in Python: what is left
above it is all the rest (HTTP, links, journal, placement, threads).

    .venv/bin/python bench/floor.py [--rounds 3] [--count-small 3000] [--count-large 300]
        [--files-a-run 1000]
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from accounts import seeded_sizes
from common import base_parser, main_guard, median, note, print_header, print_table, scratch_dir

from putio_mirror.fetch.crc import crc32

MIB = 1024 * 1024
STEPS = ("receive", "crc32", "write + sync")
#: the mirror's default chunk: the buffer a node's bytes are received into and written from
CHUNK = 256 * 1024
#: the libraries the brief chose, as a run of putio-mirror imports them
LIBRARIES = "import requests, sqlalchemy, pydantic, yaml, click"


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measured(files: Sequence[bytes], step: Callable[[int, bytes], None]) -> float:
    """Given the files' bytes and a step, return the step's CPU milliseconds a file."""
    before = cpu()
    for number, data in enumerate(files):
        step(number, data)
    return (cpu() - before) * 1000 / len(files)


def receive(files: Sequence[bytes]) -> float:
    """CPU a file of passing its bytes through a loopback socket pair (both ends here:
    the sender's share is the server's in real life, so half the pair is counted)."""
    sender, receiver = socket.socketpair()
    buffer = bytearray(max(len(data) for data in files))
    view = memoryview(buffer)

    def send_all() -> None:
        for data in files:
            sender.sendall(data)

    thread = threading.Thread(target=send_all)
    before = cpu()
    thread.start()
    for data in files:
        got = 0
        while got < len(data):
            got += receiver.recv_into(view[got : len(data)])
    thread.join()
    spent = (cpu() - before) * 1000 / len(files)
    sender.close()
    receiver.close()
    return spent / 2


def _crc32(data: bytes) -> None:
    crc32(data)


def write_and_sync(files: Sequence[bytes], where: Path) -> float:
    staging, verified = where / "staging", where / "staging" / "verified"
    verified.mkdir(parents=True)

    def step(number: int, data: bytes) -> None:
        part = f"{staging}/{number}.part"
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
            os.fdatasync(fd)
        finally:
            os.close(fd)
        os.rename(part, f"{verified}/{number}")

    return measured(files, step)


def data_path(files: Sequence[bytes], where: Path) -> float:
    """CPU a file of the mirror's data path in one loop (see the module's docstring),
    counted on the receiving thread alone."""
    server = socket.create_server(("127.0.0.1", 0))
    sender = threading.Thread(target=_send_each, args=(server, files))
    sender.start()
    connection = socket.create_connection(server.getsockname())
    view = memoryview(bytearray(CHUNK))
    verified = where / "verified"
    verified.mkdir(parents=True)
    before = thread_cpu()
    for number, data in enumerate(files):
        part = f"{where}/{number}.part"
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        got = crc = 0
        while got < len(data):
            want = min(CHUNK, len(data) - got)
            filled = 0
            while filled < want:
                filled += connection.recv_into(view[filled:want])
            os.pwrite(fd, view[:filled], got)
            crc = crc32(view[:filled], crc)
            got += filled
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
        os.rename(part, f"{verified}/{number}")
    spent = thread_cpu() - before
    sender.join()
    connection.close()
    server.close()
    return spent * 1000 / len(files)


def _send_each(server: socket.socket, files: Sequence[bytes]) -> None:
    accepted, _ = server.accept()
    with accepted:
        for data in files:
            accepted.sendall(data)


def thread_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime + usage.ru_stime


def start_seconds() -> float:
    """CPU seconds of a fresh interpreter importing the chosen libraries (``LIBRARIES``)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", LIBRARIES], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def one_round(files: Sequence[bytes], workdir: Path | None) -> dict[str, float]:
    os.sync()
    with scratch_dir(workdir) as where:
        return {
            "receive": receive(files),
            "crc32": measured(files, lambda _, data: _crc32(data)),
            "write + sync": write_and_sync(files, where),
            "data path": data_path(files, where / "path"),
            "start": start_seconds(),
        }


def run(args: argparse.Namespace) -> None:
    print_header("floor")
    kinds = {
        "small": [os.urandom(size) for size in seeded_sizes(args.count_small, 512, 4096)],
        "1MiB": [os.urandom(MIB) for _ in range(args.count_large)],
    }
    rows, path_rows = [], []
    for name, files in kinds.items():
        rounds = []
        for number in range(args.rounds):
            rounds.append(one_round(files, args.workdir))
            note(f"{name}: round {number + 1}/{args.rounds}")
        steps = [median(r[step] for r in rounds) for step in STEPS]
        rows.append([name, *(f"{ms:.3f}" for ms in steps), f"{sum(steps):.3f}"])
        path = median(r["data path"] for r in rounds)
        start = median(r["start"] for r in rounds) * 1000 / args.files_a_run
        path_rows.append([name, f"{path:.3f}", f"{start:.3f}", f"{path + start:.3f}"])
    print_table(
        f"CPU ms a file, medians of {args.rounds} rounds",
        ["files", *STEPS, "floor"],
        rows,
    )
    print_table(
        f"the data path in one loop, and the start spread over {args.files_a_run} files "
        f"(CPU ms a file, medians of {args.rounds} rounds)",
        ["files", "data path", "start", "floor of a Python mirror"],
        path_rows,
    )


def main() -> int:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--count-small", type=int, default=3000)
    parser.add_argument("--count-large", type=int, default=300)
    parser.add_argument(
        "--files-a-run", type=int, default=1000, help="files the start is spread over"
    )
    return main_guard(lambda: run(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
