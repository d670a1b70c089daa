"""Throughput of one large file: putio-mirror against curl and aria2c, all from one nginx.

(a) unthrottled, one file (default 2 GiB): putio-mirror ``files download`` vs
``curl -s -o`` (one stream). (b) nginx capping every connection at 20 MiB/s
(``limit_rate``, as a put.io node roughly does), one 512 MiB file:
putio-mirror vs ``aria2c -x8 -s8 -k1M`` vs curl.

putio-mirror talks to a FakePutio whose ``files/{id}/url`` points at the nginx;
the nginx file is written from the fake's own content generator, so size and
CRC32 match and putio-mirror's verification passes. Every round starts from a
fresh folder and journal, so every round really downloads.

    .venv/bin/python bench/throughput.py [--rounds 3] [--size 2G] [--capped-size 512M]
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

NAME = "big.bin"


@dataclass(frozen=True)
class Served:
    """The file under test: in the fake (for putio-mirror) and on nginx (for the others)."""

    fake: FakePutio
    url: str
    size: int
    crc32: str
    timeout: float
    connections: int


def putio_mirror_runner(served: Served) -> Runner:
    def run(where: Path) -> Measurement:
        config = write_config(where, served.fake, download={"connections": served.connections})
        measured = run_putio_mirror(config, "files", "download", timeout=served.timeout)
        check_file(where / "downloads" / NAME, served.size, served.crc32)
        return measured

    return run


def curl_runner(served: Served) -> Runner:
    def run(where: Path) -> Measurement:
        target = where / NAME
        argv = [tool_path("curl"), "-s", "-S", "-f", "-o", str(target), served.url]
        measured = run_measured(argv, timeout=served.timeout)
        check_file(target, served.size, served.crc32)
        return measured

    return run


def aria2c_runner(served: Served) -> Runner:
    def run(where: Path) -> Measurement:
        argv = [tool_path("aria2c"), "-x8", "-s8", "-k1M", "-q", "--allow-overwrite=true"]
        argv += ["-d", str(where), "-o", NAME, served.url]
        measured = run_measured(argv, timeout=served.timeout)
        check_file(where / NAME, served.size, served.crc32)
        return measured

    return run


RUNNERS = {"putio-mirror": putio_mirror_runner, "aria2c": aria2c_runner, "curl": curl_runner}


def bench_part(
    args: argparse.Namespace,
    title: str,
    size: int,
    rate: str | None,
    names: Sequence[str],
    pairs: Sequence[tuple[str, str]],
) -> None:
    """Given a file size and an nginx rate cap, race the named contenders and print tables."""
    with scratch_dir(args.workdir) as work, FakePutio() as fake:
        need_free_space(work, 2 * size)
        serve = work / "serve"
        serve.mkdir()
        file_id = fake.add_file(NAME, size=size)
        note(f"writing the {human_size(size)} file that nginx serves…")
        export_file(fake, file_id, serve / f"{file_id}.bin")
        # At least 2 MB/s (unthrottled) or 5 MB/s per connection (capped), or it is a failure.
        timeout = 120 + size / ((5 if rate else 2) * MB)
        with nginx(serve, rate=rate, workdir=args.workdir) as base:
            fake.node_base_url = base
            url = f"{base}/{file_id}.bin"
            connections = args.connections if args.connections else (8 if rate else 4)
            served = Served(fake, url, size, fake.file_crc32(file_id), timeout, connections)
            contenders = [(name, RUNNERS[name](served)) for name in names]
            results = alternate(contenders, args.rounds, args.workdir)
    print_table(
        f"{title}: medians of {args.rounds} rounds", SUMMARY_HEADERS, summary_rows(results, size)
    )
    print_table(f"{title}: ratios of medians", RATIO_HEADERS, ratio_rows(results, pairs))


def run(args: argparse.Namespace) -> None:
    ensure_tools()
    print_header("throughput")
    if args.part in ("both", "unthrottled"):
        title = f"(a) one {human_size(args.size)} file, unthrottled nginx"
        bench_part(
            args, title, args.size, None, ["putio-mirror", "curl"], [("curl", "putio-mirror")]
        )
    if args.part in ("both", "capped"):
        title = f"(b) one {human_size(args.capped_size)} file, nginx limit_rate {args.rate}"
        names = ["putio-mirror", "aria2c", "curl"]
        pairs = [("putio-mirror", "aria2c"), ("curl", "putio-mirror")]
        bench_part(args, title, args.capped_size, args.rate, names, pairs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "throughput")
    parser.add_argument("--size", type=parse_size, default="2G", help="(a) file size (2G)")
    parser.add_argument(
        "--capped-size", type=parse_size, default="512M", help="(b) file size (512M)"
    )
    parser.add_argument("--rate", default="20m", help="(b) nginx limit_rate per connection")
    parser.add_argument("--part", choices=["both", "unthrottled", "capped"], default="both")
    parser.add_argument(
        "--connections",
        type=int,
        default=0,
        help="putio-mirror's download.connections (default: 4 unthrottled, 8 capped, "
        "the same 8 as aria2c -x8 -s8)",
    )
    args = parser.parse_args(argv)
    return main_guard(lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
