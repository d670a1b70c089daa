"""Many small files: putio-mirror against ``aria2c -j8 -i list``, all from one nginx.

1,000 files of 1 MiB (``--count``, ``--size``) in one put.io folder. putio-mirror
runs ``files download`` against a FakePutio whose ``files/{id}/url`` points at the
nginx (so it also pays one API call per file, as it does against put.io);
aria2c gets the nginx URLs directly in an input list. Every round starts from a
fresh folder and journal; every copy is checked (size and CRC32) after the round.

    .venv/bin/python bench/many_files.py [--rounds 3] [--count 1000] [--size 1M]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from common import (
    MB,
    RATIO_HEADERS,
    SUMMARY_HEADERS,
    Measurement,
    Runner,
    alternate,
    base_parser,
    check_file,
    export_file,
    human_size,
    main_guard,
    need_free_space,
    note,
    parse_size,
    print_header,
    print_table,
    ratio_rows,
    run_measured,
    run_putio_mirror,
    scratch_dir,
    summary_rows,
    tool_path,
    write_config,
)
from tools import ensure_tools, nginx

from putio_mirror.fakeputio import FakePutio

FOLDER = "many"


@dataclass(frozen=True)
class Listing:
    """The files under test: relative path → (nginx URL, size, CRC32), and the fake."""

    fake: FakePutio
    files: dict[str, tuple[str, int, str]]
    timeout: float

    def check(self, root: Path) -> None:
        """Raise BenchError unless every file is under ``root`` with its size and CRC32."""
        for relative, (_, size, crc32) in self.files.items():
            check_file(root / relative, size, crc32)


def putio_mirror_runner(listing: Listing) -> Runner:
    def run(where: Path) -> Measurement:
        config = write_config(where, listing.fake)
        measured = run_putio_mirror(config, "files", "download", timeout=listing.timeout)
        listing.check(where / "downloads")
        return measured

    return run


def aria2c_runner(listing: Listing, jobs: int) -> Runner:
    def run(where: Path) -> Measurement:
        entries = [f"{url}\n  out={path}\n" for path, (url, _, _) in listing.files.items()]
        (where / "list.txt").write_text("".join(entries))
        target = where / "downloads"
        argv = [tool_path("aria2c"), f"-j{jobs}", "-i", str(where / "list.txt"), "-q"]
        argv += ["--allow-overwrite=true", "-d", str(target)]
        measured = run_measured(argv, timeout=listing.timeout)
        listing.check(target)
        return measured

    return run


def build(fake: FakePutio, serve: Path, base: str, count: int, size: int) -> Listing:
    """Given a fake and nginx's folder, add ``count`` files to both; return their listing."""
    folder = fake.add_folder(FOLDER)
    files: dict[str, tuple[str, int, str]] = {}
    for number in range(1, count + 1):
        name = f"file-{number:05d}.bin"
        file_id = fake.add_file(name, parent_id=folder, size=size)
        export_file(fake, file_id, serve / f"{file_id}.bin")
        files[f"{FOLDER}/{name}"] = (f"{base}/{file_id}.bin", size, fake.file_crc32(file_id))
    # At least 1 MB/s overall, or it is a failure.
    return Listing(fake, files, 120 + count * size / MB)


def run(args: argparse.Namespace) -> None:
    ensure_tools()
    print_header("many_files")
    total = args.count * args.size
    with scratch_dir(args.workdir) as work, FakePutio() as fake:
        need_free_space(work, 2 * total)
        serve = work / "serve"
        serve.mkdir()
        with nginx(serve, rate=args.rate, workdir=args.workdir) as base:
            note(f"writing {args.count} files of {human_size(args.size)} for nginx…")
            listing = build(fake, serve, base, args.count, args.size)
            fake.node_base_url = base
            aria2c = f"aria2c -j{args.jobs}"
            contenders = [
                ("putio-mirror", putio_mirror_runner(listing)),
                (aria2c, aria2c_runner(listing, args.jobs)),
            ]
            results = alternate(contenders, args.rounds, args.workdir)
    rate = f", nginx limit_rate {args.rate}" if args.rate else ""
    title = f"{args.count} files of {human_size(args.size)}{rate}"
    rows = summary_rows(results, total)
    print_table(f"{title}: medians of {args.rounds} rounds", SUMMARY_HEADERS, rows)
    ratios = ratio_rows(results, [("putio-mirror", aria2c)])
    print_table(f"{title}: ratios of medians", RATIO_HEADERS, ratios)


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "many files")
    parser.add_argument("--count", type=int, default=1000, help="how many files (1000)")
    parser.add_argument("--size", type=parse_size, default="1M", help="size of each (1M)")
    parser.add_argument("--jobs", type=int, default=8, help="aria2c -j (8)")
    parser.add_argument("--rate", default=None, help="nginx limit_rate per connection (none)")
    args = parser.parse_args(argv)
    return main_guard(lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
