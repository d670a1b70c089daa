"""``putio-mirror doctor``: check the config, folders, journal, token, download nodes,
remote root, windows and free space; one line each, a hint for each problem; exit 0 if all
is well, else 2.

Read-only: it takes no run lock, creates no folder or journal, and changes nothing on
put.io, so it may run beside a sync.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from putio_mirror.cli.context import Context, pass_context, quick_client
from putio_mirror.config.remote_folders import folder_at
from putio_mirror.core.errors import ExitCode, MirrorError
from putio_mirror.core.health import Finding, finding_lines, ok, problem, problem_count
from putio_mirror.core.units import human_bytes

if TYPE_CHECKING:
    from putio_mirror.config.settings import Settings
    from putio_mirror.putio.client import PutioClient

LOGIN_HINT = "run `putio-mirror login` (or set PUTIO_TOKEN, or putio.token_file)"


@click.command("doctor")
@pass_context
def doctor(context: Context) -> int:
    """Check the setup and say what is wrong, with a hint for each problem (exit 0 or 2)."""
    findings = list(checkup(context.settings(writes=False, needs_token=False)))
    for line in finding_lines(findings):
        click.echo(line)
    count = problem_count(findings)
    if count:
        click.echo(f"{count} problem{'s' if count != 1 else ''} found.")
        return int(ExitCode.USAGE)
    click.echo("All is well.")
    return 0


def checkup(settings: Settings) -> Iterator[Finding]:
    """Given settings, yield a finding for each thing a run depends on."""
    from putio_mirror.core.health import describe_windows

    yield _config_finding(settings)
    yield from _path_findings(settings)
    yield _journal_finding(settings)
    if (gone := _unmounted_finding(settings)) is not None:
        yield gone
    yield from _folders_finding(settings)
    yield from _putio_findings(settings)
    now = datetime.now(UTC).astimezone()
    yield ok("windows", describe_windows(settings.schedule, now))
    yield _space_finding(settings)


def _config_finding(settings: Settings) -> Finding:
    from putio_mirror.config.settings import default_config_path

    if settings.config_path is None:
        return ok("config", f"no file ({default_config_path()} does not exist): the defaults")
    return ok("config", str(settings.config_path))


def _path_findings(settings: Settings) -> Iterator[Finding]:
    from putio_mirror.config.paths import sqlite_file

    if settings.policy.submit_blackhole:
        yield _blackhole_finding(settings.blackhole_dir)
    yield _folder_finding("paths.downloads", settings.download_dir)
    yield _staging_finding(settings.staging_dir, settings.download_dir)
    journal_file = sqlite_file(settings.journal_url)
    if journal_file is not None:
        yield _journal_path_finding(journal_file)
        if (shared := _shared_journal_finding(journal_file)) is not None:
            yield shared
    if settings.log_file is not None:
        yield _folder_finding("paths.log_file", settings.log_file, is_folder=False)


def _blackhole_finding(path: Path) -> Finding:
    if not path.is_dir():
        return problem(
            "paths.blackhole",
            f"{path} does not exist" if not path.exists() else f"{path} is not a folder",
            f"create it (mkdir -p {path}) and point the media manager's torrent blackhole "
            "there, or fix paths.blackhole (or set transfers.submit_blackhole: false)",
        )
    return _folder_finding("paths.blackhole", path)


def _folder_finding(topic: str, path: Path, *, is_folder: bool = True) -> Finding:
    from putio_mirror.config.paths import unwritable_reason

    hint = f"fix {topic}, or the permissions of that folder"
    return _writable_finding(topic, path, unwritable_reason(path, is_folder), hint)


def _journal_path_finding(database: Path) -> Finding:
    from putio_mirror.config.paths import journal_unwritable_reason
    from putio_mirror.journal.where import free_bytes_if_full

    hint = "fix paths.journal, or the permissions of its folder (or remount it read-write)"
    found = _writable_finding("paths.journal", database, journal_unwritable_reason(database), hint)
    free = None if found.problem else free_bytes_if_full(database)
    if free is None:
        return found
    return problem(
        "paths.journal",
        f"the disk holding the journal ({database}) is full ({free:,} bytes free)",
        "free some space there: no run can journal (nor download) until then; `status`, "
        "`history` and `--dry-run` still read the journal",
    )


def _shared_journal_finding(database: Path) -> Finding | None:
    """Given a SQLite journal's file, return a problem if a network share or a FUSE
    filesystem holds it (or would: it may not be made yet); None if neither, or unknown."""
    from putio_mirror.app.opening import described
    from putio_mirror.local.mounts import shared_filesystem

    mount = shared_filesystem(database.absolute())  # a link's target: SQLite follows it
    if mount is None:
        return None
    said = described(database, mount)
    return problem("paths.journal", said.message.removeprefix("the journal "), said.hint)


def _writable_finding(topic: str, path: Path, reason: str | None, hint: str) -> Finding:
    if reason is not None:
        return problem(topic, reason, hint)
    made = "" if path.exists() else " (made by the first run)"
    return ok(topic, f"{path}, writable{made}")


def _staging_finding(staging: Path, downloads: Path) -> Finding:
    found = _folder_finding("paths.staging", staging)
    if found.problem or _device(staging) == _device(downloads):
        return found
    return problem(
        "paths.staging",
        f"{staging} is on another filesystem than {downloads}: placing would copy, not rename",
        "put paths.staging on the same disk as paths.downloads (or leave it unset)",
    )


def _device(path: Path) -> int:
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return existing.stat().st_dev


def _journal_finding(settings: Settings) -> Finding:
    from putio_mirror.journal.reader import JournalReader
    from putio_mirror.journal.store import SCHEMA_VERSION

    try:
        reader = JournalReader.open(settings.journal_url)
        if reader is None:
            return ok("journal", f"{settings.journal_url}: not made yet (the first run makes it)")
        with reader:
            version = reader.schema_version()
            url = reader.url
    except MirrorError as error:
        return problem("journal", error.message, error.hint)
    if version is None:
        return ok("journal", f"{url}: empty (the first run makes its tables)")
    if version > SCHEMA_VERSION:
        return problem(
            "journal",
            f"{url}: schema {version}, newer than this putio-mirror knows ({SCHEMA_VERSION})",
            "upgrade putio-mirror, or point paths.journal at another database",
        )
    later = "" if version == SCHEMA_VERSION else f", upgraded to {SCHEMA_VERSION} by the next run"
    return ok("journal", f"{url}: reachable, schema {version}{later}")


def _unmounted_finding(settings: Settings) -> Finding | None:
    """A problem if the download folder looks like a disk not mounted, by the rule a run
    follows (``local/mounts.why_not_mounted``): a run would download nothing there."""
    from putio_mirror.local.mounts import why_not_mounted

    downloads, staging = settings.download_dir, settings.staging_dir
    why = why_not_mounted(downloads, staging, lambda: _kept_by_this_host(settings))
    if why is None:
        return None
    return problem(
        "paths.downloads",
        f"{why}: runs download nothing until it is back",
        "is its disk mounted? (mount it, see /etc/fstab) if it moved, point paths.downloads "
        f"at it; if you emptied it on purpose, make its staging folder again (mkdir -p {staging})",
    )


def _kept_by_this_host(settings: Settings) -> bool:
    """Whether the journal, this host's alone (not a server's, which other hosts may
    share), knows files kept in the download folder (False if it cannot be read: the
    journal's own finding says why)."""
    from putio_mirror.journal.reader import JournalReader

    try:
        reader = JournalReader.open(settings.journal_url)
        if reader is None:
            return False
        with reader:
            if reader.on_server or reader.schema_version() is None:
                return False
            return any(record.is_verified for record in reader.downloads().values())
    except MirrorError:
        return False


def _folders_finding(settings: Settings) -> Iterator[Finding]:
    """Given settings of a journal hosts may share (PostgreSQL), say whether every other
    host that said which download folder it places into (``app/sharing``) says this one."""
    from putio_mirror.app.sharing import elsewhere, host_id
    from putio_mirror.core.attention import other_download_folders
    from putio_mirror.journal.reader import JournalReader
    from putio_mirror.local.marks import folder_mark

    try:
        reader = JournalReader.open(settings.journal_url)
        if reader is None:
            return
        with reader:
            if not reader.on_server:
                return
            said, here = reader.folders_placed_into(), host_id(reader.lock_path)
    except MirrorError:
        return  # the journal's finding tells why (none made yet, unreachable, too new)
    hosts = sorted({name for _, host, name in said if host != here})
    if not hosts:
        return
    mark = folder_mark(settings.download_dir, make=False)
    if mark is None:
        text = f"not known yet whether {', '.join(hosts)} place into this folder"
        yield ok("shared journal", f"{text} (the first run tells)")
    elif others := elsewhere(said, mark, here):
        said_of = other_download_folders(others, str(settings.download_dir))
        yield problem("shared journal", said_of.message, said_of.hint)
    else:
        yield ok("shared journal", f"{', '.join(hosts)} place into this download folder too")


def _putio_findings(settings: Settings) -> Iterator[Finding]:
    if settings.token is None:
        for reason in settings.token_problems:  # what is there, and why it cannot be used
            yield problem("token", reason, f"fix it, or {LOGIN_HINT}")
        if not settings.token_problems:
            yield problem("token", "no put.io token is set", LOGIN_HINT)
        return
    with quick_client(settings) as client:
        try:
            account = client.account_info()
        except MirrorError as error:
            yield problem("token", error.message, error.hint or LOGIN_HINT)
            return
        space = ""
        if account.disk_avail is not None and account.disk_size is not None:
            space = f", {human_bytes(account.disk_avail)} free of {human_bytes(account.disk_size)}"
        yield ok("token", f"valid: put.io account {account.username}{space}")
        yield _nodes_finding(settings, client)
        paths = settings.folder_paths
        yield _folder(
            client, "download.remote_root", settings.policy.remote_root_id, paths.remote_root
        )
        if settings.save_parent_id is not None:
            topic = "transfers.save_parent_id"
            yield _folder(client, topic, settings.save_parent_id, paths.save_parent)


def _nodes_finding(settings: Settings, client: PutioClient) -> Finding:
    """Ask put.io's download nodes for one byte of a file (one mirrored before, best): the
    API may answer while the nodes, where the bytes come from, do not."""
    import functools
    import time

    from putio_mirror.fetch.witness import first_byte_comes

    asked = _files_to_ask(settings, client)
    if not asked:
        return ok("download nodes", "not checked: put.io holds no file to ask a byte of")
    link = functools.partial(client.download_url, retry=False)
    timeout = (10.0, settings.read_timeout)
    started = time.monotonic()
    for file_id in asked:
        if first_byte_comes(link, client.sibling_session(), file_id, timeout):
            took = time.monotonic() - started
            return ok(
                "download nodes", f"the first byte of put.io file {file_id} came in {took:.2f} s"
            )
    return problem(
        "download nodes",
        f"no byte of put.io file{'s' if len(asked) > 1 else ''} "
        f"{', '.join(map(str, asked))} came, though put.io's API answers",
        "put.io's storage or the network to it is down: runs stop their downloads without "
        "counting any file as failing, and resume once it is back",
    )


def _files_to_ask(settings: Settings, client: PutioClient) -> list[int]:
    """Two files put.io holds to ask a byte of: the last mirrored that put.io still holds
    (with ``delete_remote_after`` none may be: its link would find nothing, which says
    nothing of the nodes), else the first put.io lists."""
    from putio_mirror.core.errors import NotFoundError

    held: list[int] = []
    try:
        for file_id in _last_mirrored(settings):
            try:
                client.file(file_id)
            except NotFoundError:
                continue
            held.append(file_id)
            if len(held) == 2:
                break
        if held:
            return held
        listed = client.list_all_files()
    except MirrorError:
        return held
    return [f.id for f in listed if not f.is_folder and f.size][:2]


#: how many of the files mirrored last doctor asks put.io about before listing the account
MIRRORED_ASKED = 5


def _last_mirrored(settings: Settings) -> list[int]:
    """The files mirrored last, newest first (none if the journal cannot be read)."""
    from putio_mirror.journal.reader import JournalReader

    try:
        reader = JournalReader.open(settings.journal_url)
        if reader is None:
            return []
        with reader:
            records = [r for r in reader.downloads().values() if r.verified_at and r.size]
    except MirrorError:
        return []  # the journal's own finding says why
    records.sort(key=lambda record: record.verified_at or datetime.min, reverse=True)
    return [record.file_id for record in records[:MIRRORED_ASKED]]


def _folder(client: PutioClient, topic: str, folder_id: int, path: str | None) -> Finding:
    """Given a folder the config names by id, or by path (then looked up), say if it is one."""
    if path is None:
        return _folder_on_putio(client, topic, folder_id)
    try:
        found = folder_at(client, path, topic)
    except MirrorError as error:
        return problem(topic, error.message, error.hint)
    return ok(topic, f"{path}, the folder {found}")


def _folder_on_putio(client: PutioClient, topic: str, folder_id: int) -> Finding:
    if folder_id == 0:
        return ok(topic, "0, the whole account")
    try:
        found = client.file(folder_id)
    except MirrorError as error:
        return problem(
            topic,
            f"put.io has no folder {folder_id} ({error.message})",
            f"fix {topic}: the number in the address of the folder at app.put.io/files/…",
        )
    if not found.is_folder:
        return problem(topic, f"{folder_id} is a file ({found.name}), not a folder", f"fix {topic}")
    return ok(topic, f"{folder_id}, the folder {found.name!r}")


def _space_finding(settings: Settings) -> Finding:
    from putio_mirror.local.space import free_bytes

    try:
        free = free_bytes(settings.download_dir)
    except OSError as error:
        return problem("free space", f"cannot tell: {error.strerror}", "check paths.downloads")
    margin = settings.free_space_margin
    text = f"{human_bytes(free)} free for {settings.download_dir}"
    if free <= margin:
        return problem(
            "free space",
            f"{text}, less than the {human_bytes(margin)} kept spare: nothing can be downloaded",
            "free some space there, or lower download.free_space_margin_mb",
        )
    return ok("free space", text)
