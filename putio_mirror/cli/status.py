"""``putio-mirror status [--json]``: put.io's transfers, what is downloading now, staged
bytes, files that failed and their next try, the last run, the windows.

Read-only and lock-free, so it answers while a sync runs: the journal through
``JournalReader`` (SQLite's WAL lets it read beside the writer), staging by looking,
put.io by listing.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from putio_mirror.app.owners import owner_alive, run_summary
from putio_mirror.app.run_end import with_kept_ends
from putio_mirror.cli.context import Context, pass_context, quick_client
from putio_mirror.core.attention import NEEDS_YOU, Attention
from putio_mirror.core.desired import added_by_us
from putio_mirror.core.errors import MirrorError
from putio_mirror.core.health import describe_windows
from putio_mirror.core.status import (
    FailingFile,
    LocalDownload,
    StatusView,
    status_document,
    status_lines,
)

if TYPE_CHECKING:
    from putio_mirror.config.settings import Settings
    from putio_mirror.core.state import DownloadRecord, Transfer
    from putio_mirror.journal.reader import JournalReader
    from putio_mirror.putio.client import PutioClient


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print it as one JSON document.")
@pass_context
def status(context: Context, as_json: bool) -> int:
    """Show put.io's transfers, what is downloading now, failures, the last run, the windows."""
    view = gather(context.settings(writes=False, needs_token=False))
    if as_json:
        click.echo(json.dumps(status_document(view), indent=2, ensure_ascii=False))
    else:
        for line in status_lines(view):
            click.echo(line)
    return 0


def gather(settings: Settings) -> StatusView:
    """Given settings, read put.io, the journal and staging (changing none) into a StatusView."""
    from putio_mirror.journal.reader import JournalReader

    windows = describe_windows(settings.schedule, datetime.now(UTC).astimezone())
    staged = _staged_bytes(settings.staging_dir)
    reader = JournalReader.open(settings.journal_url)
    with _putio(settings) as putio:
        transfers = putio.transfers()
        if reader is None:
            return StatusView(transfers, putio.problem, (), staged, (), None, windows)
        with reader:
            if reader.schema_version() is None:
                return StatusView(transfers, putio.problem, (), staged, (), None, windows)
            downloads = reader.downloads()
            left_alone = _left_alone(transfers, reader, settings)
            in_flight = _in_flight(reader, downloads, settings, putio)
            runs = with_kept_ends(reader.recent_runs(1), reader.lock_path)
            noted_by, notes = reader.last_notes(NEEDS_YOU)
            if noted_by is not None:
                (noted_by,) = with_kept_ends([noted_by], reader.lock_path)
    last_run = run_summary(runs[0]) if runs else None
    failing = _failing(downloads, settings)
    return StatusView(
        transfers,
        putio.problem,
        in_flight,
        staged,
        failing,
        last_run,
        windows,
        tuple(Attention(message, hint) for message, hint in notes),
        run_summary(noted_by) if noted_by else None,
        left_alone,
    )


def _left_alone(
    transfers: tuple[Transfer, ...] | None, reader: JournalReader, settings: Settings
) -> frozenset[int]:
    """The ids of the transfers putio-mirror did not add and so leaves as they are."""
    if not transfers or settings.policy.manage_foreign_transfers:
        return frozenset()
    hashes, transfer_ids = reader.submitted()
    return frozenset(t.id for t in transfers if not added_by_us(t, hashes, transfer_ids))


def _in_flight(
    reader: JournalReader,
    downloads: Mapping[int, DownloadRecord],
    settings: Settings,
    putio: _Putio,
) -> tuple[LocalDownload, ...]:
    """The downloads some run does now, with their bytes: the journal's, or for this host's
    runs the staging part's (a run journals a file's progress only when it stops)."""
    from putio_mirror.local.files import allocated_bytes
    from putio_mirror.local.staging import part_path

    here = socket.gethostname()
    found = []
    for action in reader.in_flight():
        file_id = _file_id(action.key)
        if file_id is None or owner_alive(action.owner) is False:
            continue  # not a download, or its process died (its claim not yet run out)
        record = downloads.get(file_id)
        done = record.bytes_done if record else 0
        if action.host == here:
            done = max(done, allocated_bytes(part_path(settings.staging_dir, file_id)))
        size = record.size if record and record.size else putio.size_of(file_id)
        started = action.started_at.astimezone()
        found.append(LocalDownload(action.target, action.host, done, size, started))
    return tuple(found)


def _failing(
    downloads: Mapping[int, DownloadRecord], settings: Settings
) -> tuple[FailingFile, ...]:
    from putio_mirror.core.mirroring import next_retry

    return tuple(
        FailingFile(
            record.relative_path or f"put.io file {record.file_id}",
            record.failures,
            record.last_error,
            _local(next_retry(record, settings.policy)),
        )
        for record in sorted(downloads.values(), key=lambda item: item.file_id)
        if record.failures > 0
    )


def _staged_bytes(staging: Path) -> int:
    """Given the staging folder, return the bytes stored in it (a sparse part counts what
    is written); symlinks are not followed."""
    from putio_mirror.local.files import allocated_bytes

    total = 0
    for folder, _, names in os.walk(staging):
        total += sum(allocated_bytes(Path(folder) / name) for name in names)
    return total


class _Putio:
    """put.io as status asks it: quickly (two tries), never failing the command."""

    def __init__(self, client: PutioClient | None, problem: str | None) -> None:
        self._client = client
        self.problem = problem

    def transfers(self) -> tuple[Transfer, ...] | None:
        if self._client is None:
            return None
        try:
            return self._client.list_transfers()
        except MirrorError as error:
            self._client, self.problem = None, error.message
            return None

    def size_of(self, file_id: int) -> int | None:
        if self._client is None:
            return None
        try:
            return self._client.file(file_id).size
        except MirrorError:
            return None


@contextmanager
def _putio(settings: Settings) -> Iterator[_Putio]:
    if settings.token is None:
        yield _Putio(None, "no put.io token: run `putio-mirror login`")
        return
    with quick_client(settings) as client:
        yield _Putio(client, None)


def _file_id(key: str) -> int | None:
    kind, _, rest = key.partition(":")
    return int(rest) if kind == "download" and rest.isdigit() else None


def _local(moment: datetime | None) -> datetime | None:
    return moment.astimezone() if moment else None
