"""The staging folder's layout, keyed by put.io ids, and placing verified files from it.

Everything in staging is named by a stable put.io id, never by a name put.io can
change: ``<file id>.part`` (+ its sidecar) while a file is fetched,
``verified/<file id>`` once its bytes matched put.io's size and CRC32 and wait to
be placed, ``building/<item id>/`` while a folder item is assembled (hard links to
its verified files) to be moved into the download folder with one rename. Where the
filesystem has no hard links (vfat, exFAT, some NAS shares) the verified files themselves
are moved into the build folder, after ``building/<item id>.moves`` is written and
synced: it names where each came from, so a run that dies mid-build has them moved back
(``return_moved_files``) rather than left for tidying or fetched again. A
rename or a replacement on put.io therefore never strands verified bytes under a
stale name, and a stranger's file in the download folder is never mistaken for
ours. The folder ``items/`` of earlier versions is left alone.

Placing is idempotent: a file found at its final path that is the very same file
as its verified copy (a crash after the move, before the journal heard of it)
counts as placed; a different file there is never overwritten and fails alone.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import posixpath
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from putio_mirror.core.errors import ItemError, NotDurableError, UnsafePathError
from putio_mirror.core.naming import OWN_PREFIX, room_beneath
from putio_mirror.core.state import StagedEntry
from putio_mirror.fetch.partfile import fsync_folder, lstat_or_none
from putio_mirror.fetch.segments import SIDECAR_SUFFIX, discard, sidecar_path
from putio_mirror.local.durable import (
    COPY_PREFIX,
    LINK_UNSUPPORTED,
    FoldersToSync,
    copy_durably,
    make_durable,
    place_atomically,
    synced_or_raise,
)
from putio_mirror.local.files import crc32_of, same_bytes
from putio_mirror.local.ownership import AS_IS, Ownership

VERIFIED_DIR = "verified"
#: where versions before the journal's schema 3 built items, by name
LEGACY_ITEMS_DIR = "items"
BUILDING_DIR = "building"
PART_SUFFIX = ".part"
#: beside a build folder that holds the verified files themselves (no hard links)
MOVES_SUFFIX = ".moves"


#: the digits of the longest put.io id (a 64-bit integer)
_ID_DIGITS = 20
#: the longest name placing gives a file or folder of ours beside one of put.io's, in its
#: folder: a copy coming in from staging on another filesystem (``COPY_PREFIX`` and the
#: verified file's name), an item copied in whole (``.putio-mirror-building-<item id>``)
_BESIDE_BYTES = max(len(COPY_PREFIX) + _ID_DIGITS, len(f"{OWN_PREFIX}-building-") + _ID_DIGITS)


@dataclass(frozen=True, slots=True)
class NameRoom:
    """How long put.io's relative paths may be here, and the folder whose path sets it."""

    room: int
    folder: Path


def name_room(downloads: Path, staging: Path) -> NameRoom:
    """Given the download folder as configured and the staging folder, return the longest
    relative path of put.io's that keeps every path placement writes or tells short of
    the kernel's PATH_MAX: the final path under the configured folder (what hooks and
    Sonarr open) and under the folder it leads to (where it is written, a name of ours
    beside it for a while), and the item built in staging (``building/<item id>/``)."""
    real = downloads.resolve()
    prefixes = (
        (_path_bytes(downloads.absolute()) + 1, downloads),
        (_path_bytes(real) + 1 + _BESIDE_BYTES, real),
        (_path_bytes(building_path(staging.resolve(), 10**_ID_DIGITS - 1)) + 1, staging),
    )
    longest, folder = max(prefixes, key=lambda prefix: prefix[0])
    return NameRoom(room_beneath(longest), folder)


def _path_bytes(path: Path) -> int:
    return len(os.fsencode(path))


def part_path(staging: Path, file_id: int) -> Path:
    """Given the staging folder and a put.io file id, return its ``.part`` file."""
    return staging / f"{file_id}{PART_SUFFIX}"


def verified_path(staging: Path, file_id: int) -> Path:
    """Given the staging folder and a file id, return where its verified bytes wait."""
    return staging.joinpath(VERIFIED_DIR, str(file_id))  # one join: half the CPU of two


def building_path(staging: Path, item_id: int) -> Path:
    """Given the staging folder and an item id, return where the item folder is built."""
    return staging.joinpath(BUILDING_DIR, str(item_id))


def list_staging(staging: Path) -> tuple[StagedEntry, ...]:
    """Given the staging folder, return every entry of ours in it (none if it is missing).

    Symlinks are never ours: they are left out, so nothing is ever read or written
    through one.
    """
    entries: list[StagedEntry] = []
    sidecars: dict[int, os.stat_result] = {}
    for path, info in _entries(staging):
        if (file_id := _id_before(path.name, PART_SUFFIX)) is not None:
            entries.append(_entry("part", file_id, info))
        elif (file_id := _id_before(path.name, PART_SUFFIX + SIDECAR_SUFFIX)) is not None:
            sidecars[file_id] = info
    parts = {entry.remote_id for entry in entries}
    # a sidecar beside its part is the part's; one without is left over (a crash amid
    # ``discard``, a part deleted by hand): new parts do not look for one (issue 14)
    entries += (
        _entry("sidecar", file_id, info)
        for file_id, info in sidecars.items()
        if file_id not in parts
    )
    for kind, folder in (("verified", VERIFIED_DIR), ("build", BUILDING_DIR)):
        for path, info in _entries(staging / folder):
            if path.name.isdigit():
                entries.append(_entry(kind, int(path.name), info))
    return tuple(entries)


def _id_before(name: str, suffix: str) -> int | None:
    """Given a name, return the put.io id it is made of followed by ``suffix``, else None."""
    stem = name[: -len(suffix)] if name.endswith(suffix) else ""
    return int(stem) if stem.isdigit() else None


def _entries(folder: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Given a folder, yield each entry that is no symlink and its ``lstat``; none if the
    folder is missing or a symlink. An entry gone between the folder's read and its stat
    is left out: a sync beside this run (``serve``'s blackhole pass observes while one
    runs) or another host moved it on, and what it became is listed if it was read."""
    if folder.is_symlink() or not folder.is_dir():
        return
    with os.scandir(folder) as scan:
        for entry in scan:
            if entry.is_symlink():
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            yield Path(entry.path), info


def _entry(kind: str, remote_id: int, info: os.stat_result) -> StagedEntry:
    modified = datetime.fromtimestamp(info.st_mtime, UTC)
    size = info.st_size if stat.S_ISREG(info.st_mode) else 0
    return StagedEntry(kind, remote_id, size, modified)  # type: ignore[arg-type]


def keep_verified(part: Path, staging: Path, file_id: int, *, durable: bool = True) -> Path:
    """Given a verified ``.part``, move it to ``verified/<file id>`` and return that path;
    raise ItemError if the move fails. ``durable=False`` leaves syncing ``verified/``
    (``sync_verified``) to the caller, who must before it journals the file verified."""
    target = verified_path(staging, file_id)
    try:
        real_folder(target.parent)
        part.replace(target)
    except OSError as error:
        raise ItemError(
            f"could not keep the verified {part.name}: {error.strerror}",
            f"check the permissions of {staging}; the next run verifies the part again",
        ) from error
    if durable:
        synced_or_raise(target.parent, target)
    return target


def sync_verified(staging: Path) -> None:
    """Make the moves into ``verified/`` durable (see ``keep_verified``); raise
    NotDurableError if the disk failed to."""
    verified = staging / VERIFIED_DIR
    synced_or_raise(verified, f"a verified file into {verified}")


def adopt_legacy_items(staging: Path, verified_ids: Mapping[str, int]) -> list[int]:
    """Given the journal's verified files (relative path -> file id), move every file an
    earlier version left in ``items/<item name>/`` to ``verified/<file id>``, so the engine
    places it; return the ids moved. Files it cannot match stay where they are."""
    legacy = staging / LEGACY_ITEMS_DIR
    if legacy.is_symlink() or not legacy.is_dir():
        return []
    moved: list[int] = []
    for path in sorted(legacy.rglob("*")):
        file_id = verified_ids.get(path.relative_to(legacy).as_posix())
        target = None if file_id is None else verified_path(staging, file_id)
        if target is None or path.is_symlink() or not path.is_file() or target.exists():
            continue
        real_folder(target.parent)
        path.replace(target)
        moved.append(file_id)  # type: ignore[arg-type]
    for folder in sorted((p for p in legacy.rglob("*") if p.is_dir()), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only the emptied ones
    with contextlib.suppress(OSError):
        legacy.rmdir()
    return moved


def remove_entry(staging: Path, entry: StagedEntry) -> None:
    """Given an entry of ours in staging, remove it (a part with its sidecar, a sidecar
    left alone, a verified file, or a build folder); a missing entry is fine."""
    if entry.kind == "part":
        discard(part_path(staging, entry.remote_id))
    elif entry.kind == "sidecar":
        sidecar_path(part_path(staging, entry.remote_id)).unlink(missing_ok=True)
    elif entry.kind == "verified":
        verified_path(staging, entry.remote_id).unlink(missing_ok=True)
    else:
        building = building_path(staging, entry.remote_id)
        # verified files moved in (no hard links) are no leftovers: only links are
        if _return_moved(building):
            shutil.rmtree(building, ignore_errors=True)


@dataclass(frozen=True, slots=True)
class ToPlace:
    """One verified file and where it goes: ``final`` is inside the download folder."""

    file_id: int
    source: Path
    final: Path


@dataclass(frozen=True, slots=True)
class Placed:
    """What placing an item did: the file ids now in place, and the files that could not be."""

    placed: tuple[int, ...]
    problems: tuple[str, ...]


def place_item(
    files: list[ToPlace], building: Path, target: Path | None, ownership: Ownership = AS_IS
) -> Placed:
    """Given an item's verified files, put each at its final path, given ``ownership``
    first, and return what was placed.

    ``target`` is the item's folder for a folder item. If it does not exist yet, the
    item is built in ``building`` (hard links; where the filesystem has none, the files
    themselves) and moved in with one rename, so a media manager sees it whole or not at
    all. Otherwise the files move one by one, never overwriting: a file in the way fails
    alone.
    """
    if not _return_moved(building):  # an earlier build that died (``return_moved_files``)
        raise ItemError(
            f"{building} holds verified files that could not be moved back to staging",
            "check the permissions of the staging folder; nothing is removed meanwhile",
        )
    if target is not None and not os.path.lexists(target):
        try:
            _place_whole(files, building, target, ownership)
        except _OtherDisk:  # staging is on another filesystem: the item is copied in whole
            _copy_whole(files, building, target, ownership)
        return Placed(tuple(item.file_id for item in files), ())
    placed: list[int] = []
    problems: list[str] = []
    for item in files:
        problem = place_file(item, ownership)
        if problem is None:
            placed.append(item.file_id)
        else:
            problems.append(problem)
    return Placed(tuple(placed), tuple(problems))


class _OtherDisk(Exception):
    """The build folder cannot be renamed to the item's folder: another filesystem."""


def _place_whole(files: list[ToPlace], building: Path, target: Path, ownership: Ownership) -> None:
    """Build the item in staging and move it in with one rename; raise _OtherDisk, with
    nothing moved and the verified files where they were, if staging is on another
    filesystem than ``target``."""
    if _build(files, building, target, ownership):
        try:
            _move_in(building, target, ownership)
        except _OtherDisk:
            shutil.rmtree(building, ignore_errors=True)  # only links
            raise
        _drop_sources(files)
        return
    # no hard links here: the item is still moved in whole
    _build_by_moving(files, building, target, ownership)
    try:
        _move_in(building, target, ownership)
    except (ItemError, _OtherDisk):
        _return_moved(building)  # (moved in, but not made durable: nothing to return)
        raise
    _moves_path(building).unlink()


def _copy_whole(files: list[ToPlace], building: Path, target: Path, ownership: Ownership) -> None:
    """Copy the item's verified files into a folder of ours beside ``target`` (on its
    filesystem), each synced, and move that folder in with one rename: a media manager
    sees it whole or not at all. The verified files are removed only once it is durable
    (a run that dies before finds them in place: ``_placed_already``)."""
    shutil.rmtree(building, ignore_errors=True)  # links of the build that could not move
    copying = target.with_name(f"{OWN_PREFIX}-building-{building.name}")
    shutil.rmtree(copying, ignore_errors=True)  # a dead run's (a link is left, and refused)
    inner = str(target) + "/"
    made: set[Path] = set()
    try:
        real_folder(copying, ownership)
        for item in files:
            inside = copying / str(item.final)[len(inner) :]
            if inside.parent not in made:
                real_folder(inside.parent)
                made.update(inside.parent.relative_to(copying).parents)
                made.add(inside.parent.relative_to(copying))
            _check_regular(item.source)
            copy_durably(item.source, inside)
            ownership.give(inside)
        for each in sorted(copying / folder for folder in made):
            if ownership != AS_IS:
                ownership.give(each, folder=True)
            fsync_folder(each)
        _move_in(copying, target, ownership)
    except (ItemError, _OtherDisk) as error:
        shutil.rmtree(copying, ignore_errors=True)
        if isinstance(error, _OtherDisk):  # beside target, yet another filesystem: a bug
            raise _cannot_place(target, OSError(errno.EXDEV, os.strerror(errno.EXDEV))) from None
        raise
    except OSError as error:
        shutil.rmtree(copying, ignore_errors=True)
        raise _cannot_place(target, error) from error
    _drop_sources(files)


def _build(files: list[ToPlace], building: Path, target: Path, ownership: Ownership) -> bool:
    """Link every file into the build folder, each file and folder given ``ownership``;
    False if this filesystem has no hard links."""
    shutil.rmtree(building, ignore_errors=True)  # only links of an earlier attempt
    # Every folder that holds a link, and those between it and ``building``: each made
    # once and synced once (an item of a thousand files in one folder: one of each).
    # In plain strings: no Path made a file (an item of many small files: issue 14).
    top, inner = str(building), str(target) + "/"
    made: set[str] = set()
    try:
        for item in files:
            final = str(item.final)
            if not final.startswith(inner):
                raise ValueError(f"{final} is not inside {target}")  # a caller's bug
            inside = posixpath.join(top, final[len(inner) :])
            folder = posixpath.dirname(inside)
            if folder not in made:
                real_folder(Path(folder))
                made.update(_up_to(folder, top))
            _check_regular(item.source)
            os.link(item.source, inside, follow_symlinks=False)
            ownership.give(inside)
        for each in sorted(made):
            if ownership != AS_IS:
                ownership.give(each, folder=True)
            fsync_folder(Path(each))
    except ItemError:
        shutil.rmtree(building, ignore_errors=True)
        raise
    except OSError as error:
        shutil.rmtree(building, ignore_errors=True)
        if error.errno in LINK_UNSUPPORTED:
            return False
        raise _cannot_place(building, error) from error
    return True


def _build_by_moving(
    files: list[ToPlace], building: Path, target: Path, ownership: Ownership
) -> None:
    """Move every verified file into the build folder (a filesystem without hard links),
    each file and folder given ``ownership``; the list of moves is made durable first, so
    they can be undone (``_return_moved``). Raise ItemError, every file moved back, if
    one cannot be moved."""
    shutil.rmtree(building, ignore_errors=True)  # only links of an earlier attempt
    inner = str(target) + "/"
    moves = [(item, building / str(item.final)[len(inner) :]) for item in files]
    if any(not str(item.final).startswith(inner) for item in files):
        raise ValueError(f"a file is not inside {target}")  # a caller's bug
    _write_moves(building, [(item.file_id, str(item.final)[len(inner) :]) for item in files])
    made: set[Path] = set()
    try:
        for item, inside in moves:
            if inside.parent not in made:
                real_folder(inside.parent)
                made.update(inside.parent.relative_to(building).parents)
                made.add(inside.parent)
            _check_regular(item.source)
            item.source.rename(inside)
            ownership.give(inside)
        for each in sorted(building / folder for folder in made):
            if ownership != AS_IS:
                ownership.give(each, folder=True)
            fsync_folder(each)
    except ItemError:
        _return_moved(building)
        raise
    except OSError as error:
        _return_moved(building)
        raise _cannot_place(building, error) from error


def _moves_path(building: Path) -> Path:
    return building.with_name(building.name + MOVES_SUFFIX)


def _write_moves(building: Path, moves: list[tuple[int, str]]) -> None:
    """Write, durably, which verified file goes where in the build folder."""
    path = _moves_path(building)
    real_folder(path.parent)
    with open(path, "w", encoding="utf-8") as stream:
        json.dump(moves, stream)
        stream.flush()
        os.fsync(stream.fileno())
    fsync_folder(path.parent)


def return_moved_files(staging: Path) -> None:
    """Move back to ``verified/`` the files of every build (without hard links) that a
    run left unfinished, and remove those builds: their files are placed again, not
    fetched again, and nothing is tidied that is not a link."""
    folder = staging / BUILDING_DIR
    if folder.is_symlink() or not folder.is_dir():
        return
    for moves in sorted(folder.glob(f"*{MOVES_SUFFIX}")):
        _return_moved(folder / moves.name[: -len(MOVES_SUFFIX)])


def _return_moved(building: Path) -> bool:
    """Given a build folder, move the verified files listed beside it back where they
    came from (those still in it), then drop the folder and the list; False if one could
    not go back (both are kept then)."""
    moves = _moves_path(building)
    try:
        listed = json.loads(moves.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return True
    except OSError:
        return False  # unreadable now (EIO): keep the folder and its files, never guess
    except ValueError:
        listed = []  # written and synced before any move: a torn one moved nothing
    verified = building.parent.parent / VERIFIED_DIR
    stuck = False
    for file_id, relative in listed:
        source, inside = verified / str(file_id), building / relative
        with contextlib.suppress(OSError):
            if stat.S_ISREG(os.lstat(inside).st_mode) and not os.path.lexists(source):
                real_folder(verified)
                inside.rename(source)
        stuck = stuck or os.path.lexists(inside)
    if stuck:
        return False  # a verified file could not go back: neither it nor the list is dropped
    with contextlib.suppress(OSError):
        fsync_folder(verified)
    shutil.rmtree(building, ignore_errors=True)
    moves.unlink(missing_ok=True)
    return True


def _up_to(folder: str, top: str) -> list[str]:
    """Given a folder inside ``top`` (or ``top``), return it and each folder above it, up
    to ``top`` and with it."""
    chain = [top]
    while folder != top:
        chain.append(folder)
        folder = posixpath.dirname(folder)
    return chain


def _move_in(building: Path, target: Path, ownership: Ownership) -> None:
    """Rename the built item to ``target``; raise _OtherDisk if they are on two
    filesystems, ItemError if it cannot be moved for another reason."""
    try:
        real_folder(target.parent, ownership)
        building.rename(target)
    except OSError as error:
        if error.errno == errno.EXDEV:
            raise _OtherDisk from error
        raise _cannot_place(target, error) from error
    synced_or_raise(target.parent, target)


def place_file(
    item: ToPlace, ownership: Ownership = AS_IS, later: FoldersToSync | None = None
) -> str | None:
    """Put one verified file at its final path, given ``ownership`` first (and the folders
    made for it); return why not, or None once it is there: durable, or, given ``later``,
    once it synced. Raise NotDurableError if it is there but the disk failed to make that
    last."""
    return _why_not(item.final, lambda: _place_file(item, ownership, later))


def _place_file(item: ToPlace, ownership: Ownership, later: FoldersToSync | None) -> str | None:
    there = lstat_or_none(item.final)
    if there is not None:
        if _placed_already(item.source, item.final, there):
            # moved in by an earlier attempt, interrupted or not made durable
            synced_or_raise(item.final.parent, item.final)
            item.source.unlink()
            return None
        return f"{item.final}: a different file is already there; not overwriting"
    real_folder(item.final.parent, ownership)
    _check_regular(item.source)
    ownership.give(item.source)
    place_atomically(item.source, item.final, later)
    return None


def _why_not(final: Path, place: Callable[[], str | None]) -> str | None:
    """Given a file's final path and how to place it, place it; return why not (what
    ``place`` says, or the trouble it met), None once it is there. NotDurableError is
    raised: the file is there, its durability is not; and so is CannotReplace."""
    try:
        return place()
    except (NotDurableError, CannotReplace):
        raise
    except ItemError as error:
        return f"{final}: {error.message}"
    except OSError as error:
        return f"{final}: {error.strerror}"


@dataclass(frozen=True, slots=True)
class PlacedBefore:
    """The file we placed at a path before, as the journal recorded it: its size, CRC32."""

    size: int
    crc32: str


class CannotReplace(ItemError):
    """The file placed before could not be read to prove it is still ours, or could not be
    replaced: the disk's trouble (an I/O error), no verdict on the file. It may pass (a
    share back, a disk repaired): the replacement is tried again, never given up."""


def replace_placed(item: ToPlace, before: PlacedBefore, ownership: Ownership = AS_IS) -> str | None:
    """Put a verified file at its final path in place of the file we placed there before
    (put.io replaced it by one of the same name), only if that file is still ours to the
    byte: its size and CRC32 those placed. A file changed or put there since (by a person,
    a media manager) is left alone, and why is returned. The new file takes the path with
    one rename: a reader finds the old file or the new, never none; a hard link a media
    manager made of the old one keeps its bytes. A path found empty (the old file moved
    away, imported) is placed as any (``place_file``). Raise CannotReplace if the disk
    fails to read the file there or to replace it: nothing is changed then."""
    try:
        if not os.path.lexists(item.final) or _placed_already(item.source, item.final):
            return place_file(item, ownership)
    except OSError as error:  # (lstat: the folder cannot be read)
        raise _cannot_replace(item.final, "look at it", error) from error
    return _why_not(item.final, lambda: _replace(item, before, ownership))


def _replace(item: ToPlace, before: PlacedBefore, ownership: Ownership) -> str | None:
    try:
        ours = _still_ours(item.final, before)
    except (OSError, ItemError) as error:
        raise _cannot_replace(item.final, "read it to prove it is ours", error) from error
    if not ours:
        return f"{item.final}: a different file is there than the one placed; not overwriting"
    _check_regular(item.source)
    try:
        ownership.give(item.source)
        make_durable(item.source)
        _rename_over(item.source, item.final)
    except NotDurableError:
        raise
    except (OSError, ItemError) as error:
        raise _cannot_replace(item.final, "replace it", error) from error
    return None


def _cannot_replace(final: Path, what: str, error: OSError | ItemError) -> CannotReplace:
    cause = error if isinstance(error, OSError) else error.__cause__
    why = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(error)
    return CannotReplace(
        f"{final}: could not {what}, to put put.io's new copy in its place: {why}",
        "check the disk (or the share) it is on; put.io's new copy waits in staging, put.io "
        "keeps its own, and the next run tries again",
    )


def _still_ours(final: Path, before: PlacedBefore) -> bool:
    """Whether the file at ``final`` is a regular file with the size and CRC32 placed."""
    found = os.lstat(final)
    if not stat.S_ISREG(found.st_mode) or found.st_size != before.size:
        return False
    return crc32_of(final) == before.crc32


def _rename_over(source: Path, final: Path) -> None:
    """Move ``source`` (synced) to ``final``, replacing the file there in one step, and make
    that durable; from another filesystem a synced copy beside ``final`` is moved in and
    ``source`` removed after."""
    try:
        source.rename(final)
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
        copy = final.with_name(COPY_PREFIX + source.name)
        copy_durably(source, copy)
        try:
            copy.rename(final)
        except BaseException:
            copy.unlink(missing_ok=True)
            raise
        synced_or_raise(final.parent, final)
        source.unlink(missing_ok=True)
        return
    synced_or_raise(final.parent, final)


def _drop_sources(files: Iterable[ToPlace]) -> None:
    for item in files:
        item.source.unlink(missing_ok=True)


def _placed_already(source: Path, final: Path, there: os.stat_result | None = None) -> bool:
    """Whether ``final`` (its ``lstat``, if taken already) is the verified file itself
    (moved or linked there), or, from a staging folder on another filesystem, a copy of
    it: its bytes, to the last."""
    try:
        one = os.lstat(source)
        two = there if there is not None else os.lstat(final)
    except FileNotFoundError:
        return False
    if not (stat.S_ISREG(one.st_mode) and stat.S_ISREG(two.st_mode)):
        return False
    if one.st_dev == two.st_dev:
        return one.st_ino == two.st_ino
    # (read only where a file of the very size is in the way on another disk: rare)
    return one.st_size == two.st_size and same_bytes(source, final)


def _check_regular(path: Path) -> None:
    if not stat.S_ISREG(os.lstat(path).st_mode):
        raise UnsafePathError(
            f"refusing to place {path}: it is not a regular file",
            "something replaced a verified file in staging; the next run downloads it again",
        )


def real_folder(folder: Path, ownership: Ownership = AS_IS) -> None:
    """Make the folder (each folder made given ``ownership``); raise UnsafePathError if it
    (or what it is made in) is a symlink.

    One ``lstat`` when the folder is there already, as it is for all but the first of many
    small files kept in ``verified/``: every call that releases the GIL costs them."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISDIR(os.lstat(folder).st_mode):
            return  # a real folder: lstat does not follow a symlink
    ownership.make_folders(folder)
    if folder.is_symlink():
        raise UnsafePathError(
            f"refusing to write into {folder}: it is a symbolic link",
            "remove the link; putio-mirror only writes into real folders it made",
        )


def _cannot_place(path: Path, error: OSError) -> ItemError:
    return ItemError(
        f"could not place {path}: {error.strerror}",
        "check the permissions of the download folder and of the staging folder; "
        "the verified files stay in staging and the next run places them",
    )
