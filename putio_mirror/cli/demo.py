"""``putio-mirror demo``: every job, end to end, against a local imitation of put.io.

It starts the fake put.io (real HTTP on 127.0.0.1) with sample data, makes a
temporary blackhole holding a .torrent and a .magnet, and runs ``torrents add``,
``transfers groom``, ``files download`` and ``sync --dry-run`` through the same
engine ``sync`` uses, printing what each did.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from fastbencode import bencode  # type: ignore[attr-defined]

from putio_mirror.app.listing import list_remote_files
from putio_mirror.app.run import (
    ALL_KINDS,
    BLACKHOLE_KINDS,
    DOWNLOAD_KINDS,
    GROOM_KINDS,
    Outcome,
    Request,
    Runtime,
    run_once,
)
from putio_mirror.cli.history import history_lines
from putio_mirror.config.settings import Settings, load_settings
from putio_mirror.core.naming import STAGING_DIR_NAME
from putio_mirror.core.render import plan_rows, plan_summary
from putio_mirror.core.units import human_bytes
from putio_mirror.fakeputio import FakePutio

Echo = Callable[[str], None]

SAMPLE_MAGNET = (
    "magnet:?xt=urn:btih:c9e15763f722f23e98a29decdfae341b98d53056"
    "&dn=Cosmos%20Laundromat%20%282015%29&tr=udp%3A%2F%2Ftracker.example%3A1337"
)


def sample_torrent() -> bytes:
    """A small, valid multi-file .torrent (pieces are fake; put.io's imitation doesn't care)."""
    info = {
        b"name": b"Sintel (2010)",
        b"piece length": 262144,
        b"pieces": b"\x00" * 20,
        b"files": [
            {b"length": 400_000, b"path": [b"Sintel.2010.mkv"]},
            {b"length": 2_000, b"path": [b"Subs", b"Sintel.en.srt"]},
        ],
    }
    return bytes(bencode({b"announce": b"udp://tracker.example:1337", b"info": info}))


def populate(fake: FakePutio) -> None:
    """Give the fake account nested folders, unicode names, a zero-byte file and a few MB."""
    movies = fake.add_folder("Movies")
    bunny = fake.add_folder("Big Buck Bunny (2008)", parent_id=movies)
    fake.add_file("Big.Buck.Bunny.2008.mkv", parent_id=bunny, size=3 * 1024 * 1024 + 17)
    fake.add_file("Big.Buck.Bunny.2008.en.srt", parent_id=bunny, content=b"1\n00:00:01 --> 2\nHi\n")
    music = fake.add_folder("Música – Ålbum")
    fake.add_file("01 – Träck Ünïcödé.flac", parent_id=music, size=1024 * 1024)
    fake.add_file("empty.nfo", parent_id=music, content=b"")
    shared = fake.add_folder("Items shared with you", folder_type="SHARED_ROOT")
    fake.add_file("not-yours.mkv", parent_id=shared, size=1000)


def _settings(root: Path, fake: FakePutio) -> Settings:
    overrides: dict[str, object] = {
        "putio.api_url": fake.api_url,
        "putio.upload_url": fake.upload_url,
        "paths.blackhole": str(root / "blackhole"),
        "paths.downloads": str(root / "downloads"),
        "paths.journal": str(root / "state" / "journal.sqlite3"),
    }
    # A config file of its own, so that the user's (in the config folder) is never read.
    config = root / "mirror.yaml"
    config.write_text("# the demo gives every setting as an override\n", encoding="utf-8")
    env = {"PUTIO_TOKEN": fake.token, "HOME": str(root)}
    return load_settings(config, env, overrides=overrides)


def _step(echo: Echo, runtime: Runtime, title: str, request: Request) -> Outcome:
    echo(f"\n$ putio-mirror {title}")
    outcome = run_once(runtime, request)
    for row in plan_rows(outcome.plan):
        echo("  " + "  ".join(cell for cell in row if cell))
    for note in outcome.plan.notes:
        echo(f"  {note.level}: {note.message}")
    echo(f"  {plan_summary(outcome.plan)}")
    if outcome.report is not None:
        echo(f"  result: {outcome.report.summary()} (exit {int(outcome.exit_code)})")
    for item in outcome.attention:  # what exit 11 means: a real run prints these too
        echo(f"  needs you: {item.message}")
        echo(f"    hint: {item.hint}")
    return outcome


def run_demo(*, keep: bool, echo: Echo) -> int:
    """Run the demo; return 0 when every job did what it should."""
    root = Path(tempfile.mkdtemp(prefix="putio-mirror-demo-"))
    try:
        with FakePutio() as fake:
            return _demo(root, fake, echo)
    finally:
        if keep:
            echo(f"\nThe demo's folder is kept at {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def _demo(root: Path, fake: FakePutio, echo: Echo) -> int:
    populate(fake)
    settings = _settings(root, fake)
    settings.blackhole_dir.mkdir(parents=True)
    (settings.blackhole_dir / "Sintel.torrent").write_bytes(sample_torrent())
    (settings.blackhole_dir / "Cosmos.magnet").write_text(SAMPLE_MAGNET + "\n")
    (settings.blackhole_dir / "broken.torrent").write_bytes(b"this is not bencode")
    echo(f"A local put.io is listening at {fake.api_url}; working folder {root}")
    runtime = Runtime(settings)
    _age_blackhole(settings.blackhole_dir)
    _step(echo, runtime, "torrents add", Request("torrents add", kinds=BLACKHOLE_KINDS))
    echo("\n(put.io downloads the torrents: the imitation finishes both transfers)")
    fake.finish_transfers()
    _step(echo, runtime, "transfers groom", Request("transfers groom", kinds=GROOM_KINDS))
    download = Request("files download", kinds=DOWNLOAD_KINDS)
    first = _step(echo, runtime, "files download", download)
    again = _step(echo, runtime, "files download   (again: nothing twice)", download)
    final = _step(echo, runtime, "sync --dry-run", Request("sync", kinds=ALL_KINDS, dry_run=True))
    echo(
        f"\n$ putio-mirror files list   ({len(list_remote_files(settings))} items, JSON on stdout)"
    )
    _show_tree(echo, settings.download_dir)
    echo("\n$ putio-mirror history")
    for line in history_lines(settings, limit=10, run_id=None):
        echo(f"  {line}")
    ok = first.exit_code == 0 and not again.plan.actions and not final.plan.actions
    echo("\nDemo finished: every job ran against the local put.io." if ok else "\nDemo FAILED.")
    return 0 if ok else 1


def _age_blackhole(folder: Path) -> None:
    """Blackhole files younger than two seconds are taken as still being written; age them."""
    for entry in folder.iterdir():
        os.utime(entry, (entry.stat().st_atime - 60, entry.stat().st_mtime - 60))


def _show_tree(echo: Echo, folder: Path) -> None:
    echo(f"\nFiles now in {folder}:")
    for path in sorted(folder.rglob("*")):
        if path.is_file() and STAGING_DIR_NAME not in path.parts:
            relative = path.relative_to(folder)
            echo(f"  {relative}  ({human_bytes(path.stat().st_size)})")
