"""Start-up time of ``putio-mirror --help``, next to the bare interpreter's.

Runs ``putio-mirror --help``, ``python -c pass`` and a whole ``putio-mirror files
download`` with nothing to do (imports, config, journal, one listing of a local
put.io holding one verified file, exit: what a timer pays when nothing changed)
alternately (20 rounds by default) and prints the medians. If the median of
``--help`` is over the 0.3 s target (or with ``--importtime``), it also prints the
slowest imports from ``python -X importtime``.

With ``--tricks`` the idle run is also started through ``cli.entry`` three more
ways, to show what each of its start-up and exit tricks buys: as it is, with the
default cyclic GC threshold, and with the interpreter's teardown (``sys.exit``
instead of ``os._exit``). The figures in ``cli.entry``'s comments come from here.

    .venv/bin/python bench/startup.py [--rounds 20] [--importtime] [--tricks]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from common import (
    Measurement,
    Runner,
    alternate,
    base_parser,
    child_env,
    main_guard,
    median,
    print_header,
    print_table,
    putio_mirror_command,
    run_measured,
    run_putio_mirror,
    scratch_dir,
    verdict,
    write_config,
)
from tools import ensure_tools

from putio_mirror.fakeputio import FakePutio

MAX_SECONDS = 0.3
HELP = "putio-mirror --help"
FLOOR = "python -c pass"
IDLE = "putio-mirror files download, nothing to do"
IMPORT_HELP = "from putio_mirror.cli.main import main; raise SystemExit(main(['--help']))"
# cli.entry started by ``python -c`` after a change that undoes one trick (none: as it is)
TRICKS = {
    f"{IDLE}, via cli.entry": "pass",
    f"{IDLE}, default GC threshold": "import gc, putio_mirror.cli.main as cli; "
    "cli._GC_THRESHOLD = gc.get_threshold()[0]",
    f"{IDLE}, with teardown": "import os; os._exit = sys.exit",
}


def runner(argv: Sequence[str]) -> Runner:
    def run(where: Path) -> Measurement:
        return run_measured(argv, timeout=60, env=child_env())

    return run


def slowest_imports(top: int) -> list[list[str]]:
    """Return the ``top`` imports of ``--help`` by cumulative time: module, self, cumulative."""
    argv = [sys.executable, "-X", "importtime", "-c", IMPORT_HELP]
    done = subprocess.run(argv, capture_output=True, text=True, env=child_env(), check=True)
    entries = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, module = line.removeprefix("import time:").split("|", 2)
        entries.append((int(cumulative), int(own), module.rstrip()))
    entries.sort(reverse=True)
    return [
        [module, f"{own / 1000:.1f}", f"{cumulative / 1000:.1f}"]
        for cumulative, own, module in entries[:top]
    ]


def entry_runner(config: Path, undo: str) -> Runner:
    """Given a config and a statement that undoes one of cli.entry's tricks, return a
    runner of the idle command through cli.entry after that statement."""
    argv = ["putio-mirror", "--config", str(config), "files", "download"]
    code = (
        f"import sys; sys.argv = {argv!r}; {undo}; from putio_mirror.cli.main import entry; entry()"
    )
    return runner([sys.executable, "-c", code])


def run(args: argparse.Namespace) -> None:
    ensure_tools(["time"])
    print_header("startup")
    with scratch_dir(args.workdir) as home, FakePutio() as fake:
        fake.add_file("tiny.bin", size=1024)
        config = write_config(home, fake)
        run_putio_mirror(config, "files", "download", timeout=60)  # now nothing is left to do
        idle = [*putio_mirror_command(), "--config", str(config), "files", "download"]
        contenders = [
            (HELP, runner([*putio_mirror_command(), "--help"])),
            (FLOOR, runner([sys.executable, "-c", "pass"])),
            (IDLE, runner(idle)),
        ]
        if args.tricks:
            contenders += [(name, entry_runner(config, undo)) for name, undo in TRICKS.items()]
        results = alternate(contenders, args.rounds, args.workdir)
    rows = [
        [
            name,
            f"{median(run.wall for run in runs):.3f}",
            f"{min(run.wall for run in runs):.3f}",
            f"{max(run.wall for run in runs):.3f}",
            f"{median(run.cpu for run in runs):.3f}",
            f"{median(run.rss_mb for run in runs):.0f}",
        ]
        for name, runs in results.items()
    ]
    headers = ["command", "median s", "min s", "max s", "CPU s", "peak RSS MB"]
    print_table(f"start-up: {args.rounds} runs each, alternating", headers, rows)
    wall = median(run.wall for run in results[HELP])
    target = [[HELP, f"< {MAX_SECONDS:g} s", f"{wall:.3f} s", verdict(wall, MAX_SECONDS, "s")]]
    print_table("target", ["command", "target", "median", "verdict"], target)
    if wall >= MAX_SECONDS or args.importtime:
        print_table(
            "slowest imports of --help (python -X importtime, one run; indented = nested)",
            ["module", "self ms", "cumulative ms"],
            slowest_imports(args.top),
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "start-up", rounds=20)
    parser.add_argument("--importtime", action="store_true", help="always list slow imports")
    parser.add_argument("--top", type=int, default=20, help="how many imports to list (20)")
    parser.add_argument(
        "--tricks",
        action="store_true",
        help="also run the idle command without each of cli.entry's tricks",
    )
    args = parser.parse_args(argv)
    return main_guard(lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
