"""A week of ``serve`` in a few minutes: does it stay the same size?

``putio-mirror serve`` runs for weeks beside Sonarr. This starts it as users run it (a
child process, config pointing at a ``FakePutio``) with its clocks squeezed (the
watcher's sync every few seconds, put.io looked at every second) and plays Sonarr at it
for ``--minutes``: a torrent added over RPC every ``--add-every`` seconds (every fourth
one dropped into the blackhole instead, as a blackhole client would), ``torrent-get``
with Sonarr's fields every second, each finished item imported (its files copied out of
the download folder) and then removed with its data (``torrent-remove``,
``delete-local-data``: Sonarr's "Remove Completed"). The fake finishes every transfer
as soon as it is submitted.

Every 5 s it reads the server's resident memory, open file descriptors and threads from
``/proc``; it prints them minute by minute, and the growth from the first minute to the
last against the items that went through in between. Targets: memory grows less than
``MAX_RSS_GROWTH_MB`` over the run, and no descriptor or thread is left behind
(``MAX_FD_GROWTH``, ``MAX_THREAD_GROWTH``: a few for work in flight at either end).

    .venv/bin/python bench/soak.py [--minutes 10] [--add-every 2]
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import time
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
    write_config,
)
from rpc import PASSWORD, SONARR_FIELDS, USER, Rpc, _answers, free_port, torrent, wait_until
from sampling import SAMPLE_EVERY, Sample, growth, print_minutes, print_verdicts, sample

from putio_mirror.fakeputio import FakePutio

MAX_RSS_GROWTH_MB = 20.0


class Sonarr:
    """Adds torrents, polls, imports what is finished and removes it, as Sonarr does."""

    def __init__(self, rpc: Rpc, root: Path) -> None:
        self.rpc, self.root = rpc, root
        self.added = self.done = 0
        self.library = root / "library"
        self.library.mkdir()

    def add(self) -> None:
        number = self.added
        self.added += 1
        metainfo = torrent(number)
        if number % 4 == 3:  # a blackhole client's drop
            (self.root / "blackhole" / f"drop-{number}.torrent").write_bytes(metainfo)
            return
        folder = str(self.root / "downloads" / "tv")
        self.rpc.call(
            "torrent-add",
            metainfo=base64.b64encode(metainfo).decode(),
            paused=False,
            **{"download-dir": folder},
        )

    def poll(self) -> None:
        for row in self.rpc.call("torrent-get", fields=SONARR_FIELDS)["torrents"]:
            if row["leftUntilDone"] == 0 and row["percentDone"] == 1 and not row["errorString"]:
                self._import(row)

    def _import(self, row: dict[str, object]) -> None:
        source = Path(str(row["downloadDir"])) / str(row["name"])
        target = self.library / f"{row['hashString']}-{row['name']}"
        if source.is_dir():
            shutil.copytree(source, target)
        elif source.exists():
            shutil.copy2(source, target)
        else:
            raise BenchError(f"{row['name']} reads finished, but {source} is not there")
        self.rpc.call("torrent-remove", ids=[row["hashString"]], **{"delete-local-data": True})
        self.done += 1


def soak(root: Path, minutes: float, add_every: float) -> list[Sample]:
    with FakePutio() as fake:
        port = free_port()
        config = write_config(
            root,
            fake,
            rpc={"listen": f"127.0.0.1:{port}", "username": USER, "password": PASSWORD,
                 "poll_seconds": 1},
            schedule={"watch_interval_minutes": 0.05},
        )  # fmt: skip
        log = (root / "serve.log").open("wb")
        argv = [*putio_mirror_command(), "--config", str(config), "serve"]
        server = subprocess.Popen(argv, env=child_env(), stdout=log, stderr=subprocess.STDOUT)
        try:
            return _play(server, fake, Rpc(f"http://127.0.0.1:{port}/transmission/rpc"),
                         root, minutes, add_every)  # fmt: skip
        finally:
            server.terminate()
            server.wait(60)
            log.close()


def _play(
    server: subprocess.Popen[bytes],
    fake: FakePutio,
    rpc: Rpc,
    root: Path,
    minutes: float,
    add_every: float,
) -> list[Sample]:
    started = time.monotonic()
    wait_until(lambda: _answers(rpc), 30, "serve to answer")
    sonarr = Sonarr(rpc, root)
    samples: list[Sample] = []
    next_add = next_sample = time.monotonic()
    while time.monotonic() - started < minutes * 60:
        if server.poll() is not None:
            raise BenchError(f"serve ended with exit {server.returncode}: see {root}/serve.log")
        now = time.monotonic()
        if now >= next_add:
            sonarr.add()
            next_add += add_every
        fake.finish_transfers()
        sonarr.poll()
        if now >= next_sample:
            samples.append(sample(server.pid, started, sonarr.done))
            next_sample += SAMPLE_EVERY
            if len(samples) % 12 == 0:
                note(f"{samples[-1].at / 60:.0f} min: {sonarr.done} items through, "
                     f"{samples[-1].rss_mb:.0f} MB")  # fmt: skip
        time.sleep(1.0)
    if sonarr.done < sonarr.added // 2:
        raise BenchError(f"only {sonarr.done} of {sonarr.added} items came through")
    return samples


def main() -> None:
    parser = base_parser(__doc__ or "", rounds=1)
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes (default 10)")
    parser.add_argument(
        "--add-every", type=float, default=2.0, help="seconds between two torrents (default 2)"
    )
    options = parser.parse_args()
    if options.minutes < 3:
        raise BenchError("--minutes must be 3 or more: the first and last minutes are compared")
    with scratch_dir(options.workdir) as root:
        samples = soak(root, options.minutes, options.add_every)
    print_header("soak")
    print_minutes(
        f"putio-mirror serve for {options.minutes:g} min, a torrent every "
        f"{options.add_every:g} s, Sonarr's poll every second",
        "items through",
        samples,
    )
    grown = growth(samples)
    print(f"\nfrom the first minute to the last ({grown.done} items through):")
    print_verdicts(grown, MAX_RSS_GROWTH_MB)


if __name__ == "__main__":
    raise SystemExit(main_guard(main))
