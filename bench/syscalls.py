"""System calls a file: what one ``files download`` asks of the kernel, counted by strace.

CPU a file on this VM moves by ±0.3 ms from one run to the next (bench/README.md), more
than most changes to the per-file path are worth; the system calls a file are exact, and
each is CPU in the kernel, and a GIL handoff for the other threads (the futex calls).
For N files of SIZE bytes served by nginx, either ``loose`` (each file on its own at the
account's root: placed one by one, as a movie is) or in one ``item`` (bench/many_files.py's
``many`` tree: verified into staging, placed as a whole), it runs ``files download`` once
under ``strace -f -c`` and prints the calls a file, by kind.

``--also PATH`` runs another checkout of putio-mirror (its folder, holding
``putio_mirror/``) the same way, beside this one: before and after a change.

    .venv/bin/python bench/syscalls.py [--count 1000] [--size 2048] [--layout loose,item]
        [--also /path/to/other/checkout]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from accounts import RemoteEntry, add_tree
from common import (
    BenchError,
    comma_list,
    export_file,
    main_guard,
    print_header,
    print_table,
    run_putio_mirror,
    scratch_dir,
    tool_path,
    write_config,
)
from tools import ensure_tools, nginx

from putio_mirror.fakeputio import FakePutio

LAYOUTS = ("loose", "item")
#: the kinds of call shown a column each (the rest are summed in "other")
SHOWN = ("futex", "newfstatat", "openat", "close", "fsync", "fdatasync", "pwrite64", "mkdir")


def entries_for(fake: FakePutio, layout: str, count: int, size: int) -> list[RemoteEntry]:
    """Given a fake, a layout and how many files of what size, add them; return them."""
    if layout == "item":
        return add_tree(fake, [size] * count, per_folder=100, top="many")
    entries = []
    for number in range(count):
        name = f"file-{number:06d}.bin"
        entries.append(RemoteEntry(fake.add_file(name, size=size), name, size))
    return entries


def strace_counts(text: str) -> dict[str, int]:
    """Given ``strace -c`` output, return the calls made, by name."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split()
        # "% time  seconds  usecs/call  calls  [errors]  syscall"
        if len(fields) >= 5 and fields[3].isdigit() and fields[-1] != "total":
            counts[fields[-1]] = int(fields[3])
    if not counts:
        raise BenchError(f"strace counted no calls:\n{text}")
    return counts


def traced(fake: FakePutio, where: Path, tree: Path | None) -> dict[str, int]:
    """Given a fake, a folder and a checkout of putio-mirror (None: this one), run its
    ``files download`` under strace into the folder; return the calls, by name."""
    config = write_config(where, fake)
    out = where / "strace.txt"
    wrap = [tool_path("strace"), "-f", "-c", "-o", str(out)]
    env = {"PYTHONPATH": str(tree)} if tree is not None else None
    run_putio_mirror(config, "files", "download", timeout=600, env=env, wrap=wrap)
    return strace_counts(out.read_text())


def row(layout: str, name: str, counts: dict[str, int], files: int) -> list[str]:
    total = sum(counts.values())
    other = total - sum(counts.get(kind, 0) for kind in SHOWN)
    shown = [f"{counts.get(kind, 0) / files:.2f}" for kind in SHOWN]
    return [layout, name, f"{total / files:.1f}", *shown, f"{other / files:.2f}"]


def run(args: argparse.Namespace) -> None:
    ensure_tools(["nginx", "strace"])
    print_header("syscalls")
    checkouts: list[tuple[str, Path | None]] = [("this checkout", None)]
    if args.also is not None:
        if not (args.also / "putio_mirror" / "__init__.py").is_file():
            raise BenchError(f"{args.also} holds no putio_mirror/")
        checkouts.insert(0, (str(args.also), args.also))
    rows = []
    for layout in args.layout:
        with scratch_dir(args.workdir) as work, FakePutio() as fake:
            entries = entries_for(fake, layout, args.count, args.size)
            serve = work / "serve"
            serve.mkdir()
            for entry in entries:
                export_file(fake, entry.file_id, serve / f"{entry.file_id}.bin")
            with nginx(serve, workdir=args.workdir) as base:
                fake.node_base_url = base
                for number, (name, tree) in enumerate(checkouts):
                    where = work / f"run-{number}"
                    where.mkdir()
                    rows.append(row(layout, name, traced(fake, where, tree), args.count))
    headers = ["layout", "putio-mirror", "calls a file", *SHOWN, "other"]
    title = f"system calls a file, {args.count} files of {args.size} B (strace -f -c, one run)"
    print_table(title, headers, rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--count", type=int, default=1000, help="files (1000)")
    parser.add_argument("--size", type=int, default=2048, help="bytes a file (2048)")
    parser.add_argument(
        "--layout", type=comma_list(LAYOUTS), default=list(LAYOUTS), help="loose,item (both)"
    )
    parser.add_argument("--also", type=Path, default=None, help="another checkout, run first")
    parser.add_argument("--workdir", type=Path, default=None, help="where temp folders go")
    args = parser.parse_args(argv)
    return main_guard(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
