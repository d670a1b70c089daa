"""The blackhole folder: find ``.torrent`` and ``.magnet`` files and read their info-hash.

The info-hash is the key that makes "submitted exactly once" possible, so it
must be the hash BitTorrent clients and put.io compute: the SHA-1 of the info
dictionary's bytes exactly as they stand in the file. Decoding is fastbencode's
job; ``bencoding`` finds those bytes when a file is not in canonical form.

A bad file never stops a scan: it comes back as a ``BlackholeItem`` with a
``problem`` the user can act on. At submit time ``reread`` reads the file
again, without following links, and hands over exactly the bytes whose hash
was checked. Files are moved aside with ``file_away``; nothing here ever
deletes one.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

# fastbencode re-exports these from its compiled module without declaring them.
from fastbencode import bdecode, bencode  # type: ignore[attr-defined]

from putio_mirror.core.errors import (
    BlackholeChangedError,
    CorruptTorrentError,
    ItemError,
    TorrentRefusedError,
)
from putio_mirror.core.state import BlackholeItem, BlackholeKind
from putio_mirror.core.units import human_bytes
from putio_mirror.local.bencoding import EndsMidwayError, info_span
from putio_mirror.local.bencoding import canonical as canonical_form
from putio_mirror.local.magnet import MAGNET_HINT, parse_magnet

SUBMITTED_DIR = ".submitted"
REJECTED_DIR = ".rejected"
MAX_TORRENT_BYTES = 10 * 1024 * 1024
MAX_MAGNET_BYTES = 64 * 1024

_SUFFIXES: dict[str, BlackholeKind] = {".torrent": "torrent", ".magnet": "magnet"}
# A file dated further ahead than this is not being written now: the clocks disagree.
_FUTURE_TOLERANCE_SECONDS = 24 * 60 * 60
#: how long an empty or cut-short .torrent may wait for its writer before it is rejected
WRITER_PATIENCE_SECONDS = 10 * 60
_LATER: Literal["later"] = "later"
_GONE: Literal["gone"] = "gone"

_TORRENT_HINT = (
    "Fetch the .torrent again from where it came from; the file may be cut short, "
    "or be an error page saved under a .torrent name."
)


class CutShortError(CorruptTorrentError):
    """A .torrent whose bencode ends mid-way: unusable now, whole perhaps later."""


def parse_torrent(data: bytes) -> tuple[str, str]:
    """Given the bytes of a .torrent file, return (info-hash as lowercase hex, name).

    Raise CorruptTorrentError, saying why, if the bytes are not a usable v1 torrent.
    """
    if len(data) > MAX_TORRENT_BYTES:
        raise _too_large("a .torrent", MAX_TORRENT_BYTES)
    top = _decode(data)
    info = _torrent_info(top)
    if bencode(top) == data:
        info_bytes = bencode(info)
    else:
        start, end = info_span(data)
        info_bytes = data[start:end]
    return hashlib.sha1(info_bytes, usedforsecurity=False).hexdigest(), _torrent_name(info)


def torrent_size(data: bytes) -> int:
    """Given a checked .torrent, return the bytes it holds (0 if fastbencode cannot read it:
    only the hash needs the exact bytes, and put.io reports the size soon)."""
    try:
        info = bdecode(data)[b"info"]
        if isinstance(info.get(b"length"), int):
            return int(info[b"length"])
        return sum(int(entry[b"length"]) for entry in info[b"files"])
    except (ValueError, KeyError, TypeError):
        return 0


def _decode(data: bytes) -> object:
    """Given bencoded bytes, return the decoded value; raise CorruptTorrentError if they
    are not bencode (canonical or not)."""
    try:
        return bdecode(data)
    except (ValueError, RecursionError):
        pass  # perhaps only out of canonical form; the walk below tells
    try:
        canonical, end = canonical_form(data, 0, 0)
        if end != len(data):
            raise ValueError("junk after the data")
        return bdecode(canonical)
    except EndsMidwayError:
        raise CutShortError(
            "cut short: the data ends mid-way (its download or copy did not finish)",
            _TORRENT_HINT,
        ) from None
    except (ValueError, RecursionError):
        reason = "not bencoded data"
        if data.lstrip()[:1] == b"<":
            reason += " (it looks like a web page, perhaps a login or error page)"
        raise CorruptTorrentError(reason, _TORRENT_HINT) from None


def _torrent_info(top: object) -> dict[bytes, object]:
    """Given a decoded .torrent, return its info dictionary; raise CorruptTorrentError
    naming the first thing a torrent must have and this one lacks."""
    if not isinstance(top, dict):
        raise _not_a_torrent("the top level is not a dictionary")
    info = top.get(b"info")
    if not isinstance(info, dict):
        raise _not_a_torrent("no 'info' dictionary")
    if b"pieces" not in info and info.get(b"meta version") == 2:
        raise CorruptTorrentError(
            "a BitTorrent v2-only torrent, which put.io does not support",
            "Ask the source for a v1 or hybrid torrent, or use its magnet link.",
        )
    if not isinstance(info.get(b"name"), bytes):
        raise _not_a_torrent("the 'info' dictionary has no 'name'")
    pieces = info.get(b"pieces")
    if not isinstance(pieces, bytes) or len(pieces) % 20:
        raise _not_a_torrent("the 'info' dictionary has no valid 'pieces'")
    piece_length = info.get(b"piece length")
    if not isinstance(piece_length, int) or piece_length <= 0:
        raise _not_a_torrent("the 'info' dictionary has no valid 'piece length'")
    if not isinstance(info.get(b"length"), int) and not info.get(b"files"):
        raise _not_a_torrent("the 'info' dictionary has neither 'length' nor 'files'")
    return info


def _not_a_torrent(reason: str) -> CorruptTorrentError:
    return CorruptTorrentError(f"bencoded, but not a torrent: {reason}", _TORRENT_HINT)


def _torrent_name(info: dict[bytes, object]) -> str:
    """Given a checked info dictionary, return its name (the UTF-8 variant if given)."""
    name = info.get(b"name.utf-8")
    if not isinstance(name, bytes):
        name = info[b"name"]
    assert isinstance(name, bytes)
    return name.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Scan:
    """What one look at the blackhole found. Names are paths relative to the blackhole
    (``sonarr/show.torrent``), as ``shown_name`` prints them."""

    #: the settled .torrent and .magnet files, sorted by name; unusable ones with ``problem``
    items: tuple[BlackholeItem, ...] = ()
    #: files left for later: changed a moment ago, or empty or cut short a while
    later: tuple[str, ...] = ()
    #: files in a folder inside a subfolder: not taken, only told of
    too_deep: tuple[str, ...] = ()
    #: subfolders not looked into, and why (a symbolic link, one that cannot be listed)
    skipped: tuple[tuple[str, str], ...] = ()


def scan_blackhole(
    folder: Path, *, now: float, settle_seconds: float = 2.0
) -> tuple[BlackholeItem, ...]:
    """Given the blackhole folder and the time, return its settled .torrent and .magnet
    files sorted by name, unusable ones with ``problem`` set (``scan``'s items)."""
    return scan(folder, now=now, settle_seconds=settle_seconds).items


def scan(
    folder: Path, *, now: float, settle_seconds: float = 2.0, keep_out: Collection[Path] = ()
) -> Scan:
    """Given the blackhole folder and the time, return what it holds: its settled .torrent
    and .magnet files and those left for later: changed within ``settle_seconds``, or empty
    or cut short and changed within ``WRITER_PATIENCE_SECONDS`` (perhaps still being
    written by a writer that stalled).

    Files are taken from the blackhole and from each folder in it (one per media manager,
    say), never deeper: files a level further down are only told of (``Scan.too_deep``).
    Hidden files and folders (our ``.submitted`` and ``.rejected`` among them) are left out,
    and a subfolder that is a symbolic link is not followed. The folders of ``keep_out``
    (the download folder and staging, which a set-up may put inside the blackhole) are
    not looked into: what put.io holds lands there, .torrent files among them. A missing
    folder gives nothing; raise ItemError only if the folder exists but cannot be listed.
    """
    items: list[BlackholeItem] = []
    later: list[str] = []
    found = _candidates(folder, keep_out)
    for candidate in found.candidates:
        seen = _examine(candidate, now, settle_seconds)
        if isinstance(seen, BlackholeItem):
            items.append(seen)
        elif seen == _LATER:
            later.append(candidate.name)
    return Scan(
        tuple(sorted(items, key=lambda item: item.name)),
        tuple(sorted(later)),
        tuple(sorted(found.too_deep)),
        tuple(sorted(found.skipped)),
    )


def shown_name(name: str) -> str:
    """Given a file name as the OS gave it, return it as text that can be printed, journaled
    and sent: bytes that are not UTF-8 (a Latin-1 name from a Windows share) as ``\\xNN``.

    The path itself keeps the bytes: only what people and put.io read is changed.
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")
    return name


def relative_name(path: Path, blackhole: Path) -> str:
    """Given a path in the blackhole, return how it is named to people: relative to the
    blackhole (``sonarr/show.torrent``), as ``shown_name`` prints it."""
    try:
        return shown_name(path.relative_to(blackhole).as_posix())
    except ValueError:  # not under it: its own name is all that can be said
        return shown_name(path.name)


def home_folder(path: Path, blackhole: Path) -> Path:
    """Given a file the scan found, return the folder whose ``.submitted`` and ``.rejected``
    it is filed away in: its own subfolder's, so each media manager's folder stays its own;
    the blackhole's for a file in the blackhole itself (or anywhere unexpected)."""
    parent = path.parent
    return parent if parent.parent == blackhole else blackhole


def candidates(blackhole: Path, keep_out: Collection[Path] = ()) -> list[Path]:
    """Given the blackhole (and the folders in it not to look into), return the paths of
    the files a scan would look at (in it and in its folders); none if it is missing;
    raise ItemError if it cannot be listed."""
    return [candidate.path for candidate in _candidates(blackhole, keep_out).candidates]


@dataclass(frozen=True)
class _Candidate:
    path: Path
    #: relative to the blackhole, as people read it
    name: str
    kind: BlackholeKind


@dataclass
class _Found:
    #: the (device, inode) of the folders not to look into
    keep_out: frozenset[tuple[int, int]]
    candidates: list[_Candidate] = field(default_factory=list)
    too_deep: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _candidates(blackhole: Path, keep_out: Collection[Path]) -> _Found:
    """Given the blackhole and the folders not to look into, return its .torrent and
    .magnet files and its subfolders', what lies deeper, and the subfolders skipped;
    nothing if it is missing; raise ItemError if it cannot be listed."""
    found = _Found(folder_ids(keep_out))
    try:
        entries = _entries(blackhole)
    except (FileNotFoundError, NotADirectoryError):
        return found
    except OSError as error:
        raise ItemError(
            f"cannot list the blackhole folder {blackhole}: {error.strerror}",
            "Check that the user running putio-mirror may read that folder.",
        ) from error
    subfolders: list[os.DirEntry[str]] = []
    for entry in entries:
        kind = _kind(entry.name)
        if kind is not None:
            found.candidates.append(_Candidate(Path(entry.path), shown_name(entry.name), kind))
        elif _is_folder(entry):
            if not kept_out(entry, found.keep_out):
                subfolders.append(entry)
        elif _is_linked_folder(entry):  # its files could be anywhere: never followed
            why = "it is a symbolic link, which is not followed: make it a real folder"
            found.skipped.append((shown_name(entry.name), why))
    for subfolder in subfolders:
        _look_into(subfolder, found)
    return found


def _look_into(subfolder: os.DirEntry[str], found: _Found) -> None:
    """Given a folder in the blackhole, add its .torrent and .magnet files to ``found``, and
    those one folder further down (not taken; told of)."""
    try:
        entries = _entries(Path(subfolder.path))
    except (FileNotFoundError, NotADirectoryError):
        return  # taken away between listing and looking
    except OSError as error:
        why = f"it cannot be listed: {error.strerror}"
        found.skipped.append((shown_name(subfolder.name), why))
        return
    for entry in entries:
        name = f"{subfolder.name}/{entry.name}"
        kind = _kind(entry.name)
        if kind is not None:
            found.candidates.append(_Candidate(Path(entry.path), shown_name(name), kind))
        elif _is_folder(entry) and not kept_out(entry, found.keep_out):
            found.too_deep.extend(_deeper(entry, name))


def _deeper(folder: os.DirEntry[str], name: str) -> list[str]:
    """Given a folder two levels down, return the names of its .torrent and .magnet files.

    Only this one level is looked at: a blackhole holding a deep tree (a download folder
    inside it, say) is not walked on every pass."""
    try:
        entries = _entries(Path(folder.path))
    except OSError:
        return []  # only told of: one that cannot be listed tells nothing
    return [shown_name(f"{name}/{entry.name}") for entry in entries if _kind(entry.name)]


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    """The folder's entries that are not hidden, by name; raise OSError."""
    with os.scandir(folder) as listing:
        entries = [entry for entry in listing if not entry.name.startswith(".")]
    return sorted(entries, key=lambda entry: entry.name)


def _kind(name: str) -> BlackholeKind | None:
    return _SUFFIXES.get(Path(name).suffix.lower())


def _is_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def folder_ids(folders: Collection[Path]) -> frozenset[tuple[int, int]]:
    """Given folders, return the (device, inode) of those that exist (through a link the
    user configured: the folder it leads to)."""
    found = set()
    for folder in folders:
        try:
            status = folder.stat()
        except OSError:
            continue
        found.add((status.st_dev, status.st_ino))
    return frozenset(found)


def kept_out(entry: os.DirEntry[str], keep_out: frozenset[tuple[int, int]]) -> bool:
    """Given a folder's entry, say whether it is one not to look into (its inode comes
    with the listing: a ``stat`` only for one that matches)."""
    if all(inode != entry.inode() for _, inode in keep_out):
        return False
    try:
        status = entry.stat(follow_symlinks=False)
    except OSError:
        return False
    return (status.st_dev, status.st_ino) in keep_out


def _is_linked_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_symlink() and entry.is_dir()
    except OSError:
        return False


def _examine(
    candidate: _Candidate, now: float, settle: float
) -> BlackholeItem | Literal["later", "gone"]:
    """Given one candidate file, return what it holds, ``_LATER`` if it may still be being
    written, ``_GONE`` if it was taken away meanwhile."""
    path, name, kind = candidate.path, candidate.name, candidate.kind
    try:
        status = path.lstat()
    except FileNotFoundError:
        return _GONE  # taken away between listing and looking
    except OSError as error:
        return _problem(path, name, kind, 0, f"cannot be read: {error.strerror}")
    if _is_unsettled(status.st_mtime, now, settle):
        return _LATER
    size = status.st_size
    if stat.S_ISLNK(status.st_mode):
        return _problem(
            path, name, kind, size, "symbolic links are not followed; copy the file in instead"
        )
    if not stat.S_ISREG(status.st_mode):
        return _problem(path, name, kind, size, "not a regular file")
    # A writer that stalled longer than the settle time left it empty or cut short: it
    # gets a while longer, or a torrent whose writer only paused is rejected for good.
    patient = _is_unsettled(status.st_mtime, now, WRITER_PATIENCE_SECONDS)
    if size == 0:
        return _LATER if patient else _problem(path, name, kind, size, "the file is empty")
    try:
        return _parse_bytes(path, name, kind, size, _read(path, kind)[0])
    except CutShortError as error:
        return _LATER if patient else _problem(path, name, kind, size, error.message)
    except CorruptTorrentError as error:
        return _problem(path, name, kind, size, error.message)
    except OSError as error:
        return _problem(path, name, kind, size, f"cannot be read: {error.strerror}")


def _is_unsettled(mtime: float, now: float, settle: float) -> bool:
    age = now - mtime
    return -_FUTURE_TOLERANCE_SECONDS < age < settle


def _read(path: Path, kind: BlackholeKind) -> tuple[bytes, os.stat_result]:
    if kind == "torrent":
        return _read_at_most(path, MAX_TORRENT_BYTES, "a .torrent")
    return _read_at_most(path, MAX_MAGNET_BYTES, "a .magnet file")


def _parse_bytes(
    path: Path, name: str, kind: BlackholeKind, size: int, data: bytes
) -> BlackholeItem:
    """Given a blackhole file's bytes and its name, return it parsed; raise
    CorruptTorrentError."""
    if kind == "torrent":
        info_hash, display_name = parse_torrent(data)
        return BlackholeItem(str(path), name, kind, size, info_hash, display_name)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CorruptTorrentError("not UTF-8 text, so not a .magnet file", MAGNET_HINT) from None
    info_hash, display_name, uri = parse_magnet(text)
    return BlackholeItem(str(path), name, kind, size, info_hash, display_name, uri)


def _read_at_most(path: Path, limit: int, what: str) -> tuple[bytes, os.stat_result]:
    """Given a path, return its bytes and what fstat said of the file read; raise
    CorruptTorrentError if it is not a regular file or holds more than ``limit`` bytes,
    OSError if it cannot be read (or became a symlink meanwhile)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(descriptor, "rb") as stream:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise CorruptTorrentError("not a regular file", "Copy the file itself in.")
        if status.st_size > limit:
            raise _too_large(what, limit)
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise _too_large(what, limit)
    return data, status


def _too_large(what: str, limit: int) -> CorruptTorrentError:
    return CorruptTorrentError(
        f"too large to be {what} (over {human_bytes(limit)})",
        "Check what this file really is; the blackhole takes only .torrent and .magnet files.",
    )


def _problem(path: Path, name: str, kind: BlackholeKind, size: int, problem: str) -> BlackholeItem:
    return BlackholeItem(str(path), name, kind, size, problem=problem)


@dataclass(frozen=True)
class Reread:
    """A planned blackhole file read again at submit time: what goes to put.io."""

    #: the exact bytes whose info-hash was checked (a .torrent's content)
    data: bytes
    #: the magnet link those bytes hold ("" for a .torrent)
    magnet_uri: str
    #: (device, inode) of the file read, to move that file and no other
    identity: tuple[int, int]


def reread(path: Path, info_hash: str, name: str) -> Reread:
    """Given a planned blackhole file, the info-hash it was planned with and its name (as
    the scan named it), return it read again without following links; raise
    BlackholeChangedError if it is gone, no longer a regular file, or holds another torrent
    now (the next scan looks at it afresh).

    The scan's bytes are long gone by submit time: reading the path again could follow
    a symlink swapped in meanwhile and upload bytes whose hash was never checked.
    """
    kind = _SUFFIXES.get(path.suffix.lower(), "torrent")
    try:
        data, status = _read(path, kind)
        item = _parse_bytes(path, name, kind, status.st_size, data)
    except (OSError, CorruptTorrentError) as error:
        raise _changed(name, _why_unreadable(error)) from error
    if item.info_hash != info_hash:
        raise _changed(name, "it holds another torrent than when it was read")
    return Reread(data, item.magnet_uri or "", (status.st_dev, status.st_ino))


def _why_unreadable(error: OSError | CorruptTorrentError) -> str:
    if isinstance(error, CorruptTorrentError):
        return error.message
    if error.errno == errno.ELOOP:
        return "it became a symbolic link"
    if error.errno == errno.ENOENT:
        return "it is gone (another run may have submitted it)"
    return f"it cannot be read: {error.strerror}"


def _changed(name: str, reason: str) -> BlackholeChangedError:
    return BlackholeChangedError(
        f"{name} changed after it was read, so it was not submitted: {reason}",
        "Nothing to do: it stays in the blackhole and the next run reads it afresh.",
    )


def reject_refused(
    path: Path, blackhole: Path, refusal: TorrentRefusedError, identity: tuple[int, int]
) -> ItemError:
    """Given a blackhole file put.io refused, move it into ``.rejected/`` (its own folder's)
    with put.io's reason beside it and return the error that reports it; raise ItemError if
    the move fails.

    put.io answers the same torrent the same way every time: left in place it would be
    uploaded again on every run (every 30 s under ``watch``)."""
    note = f"put.io refused it: {refusal.reason}"
    moved = file_away(path, blackhole, REJECTED_DIR, note=note, identity=identity)
    moved_name = relative_name(moved, blackhole)
    return ItemError(
        f"{refusal.message}; moved to {moved_name} (see {shown_name(moved.name)}.why.txt)",
        refusal.hint,
    )


def file_away(
    path: Path,
    blackhole: Path,
    subfolder: str,
    note: str | None = None,
    identity: tuple[int, int] | None = None,
) -> Path:
    """Given a blackhole file, move it into ``subfolder`` of its own folder (``home_folder``:
    the blackhole, or the blackhole's folder it stands in) and return its new path.

    An existing file is never overwritten: ``name (2).torrent``, ``name (3)…`` are
    tried. With a note, ``<new name>.why.txt`` holding it is written beside. With an
    ``identity`` (device, inode), only that file is moved. Raise BlackholeChangedError if
    it is gone or another file stands at ``path`` now, ItemError if the move fails.
    """
    target_folder = home_folder(path, blackhole) / subfolder
    name = relative_name(path, blackhole)
    if identity is not None and (standing := _identity(path)) != identity:
        reason = "it is gone" if standing is None else "another file took its place"
        raise BlackholeChangedError(
            f"{name} was not moved into {relative_name(target_folder, blackhole)}/: {reason}",
            "Nothing to do: the next run looks at the blackhole afresh.",
        )
    try:
        target_folder.mkdir(parents=True, exist_ok=True)
        # One run at a time (the run lock), so nobody else fills the name we pick.
        target = _free_name(target_folder, path.name, with_note=note is not None)
        path.replace(target)
        if note is not None:
            with open(_note_path(target), "x", encoding="utf-8") as stream:
                stream.write(note.rstrip("\n") + "\n")
    except OSError as error:
        raise ItemError(
            f"could not move {name} into {target_folder}: {error.strerror}",
            "Check that the user running putio-mirror may write to the blackhole folder.",
        ) from error
    return target


def _free_name(folder: Path, name: str, *, with_note: bool) -> Path:
    """Given a folder and a file name, return the first of ``name``, ``stem (2).ext``, …
    that is free (its note's name too, if one will be written)."""
    stem, suffix = Path(name).stem, Path(name).suffix
    number = 1
    while True:
        candidate = folder / (name if number == 1 else f"{stem} ({number}){suffix}")
        taken = _exists(candidate) or (with_note and _exists(_note_path(candidate)))
        if not taken:
            return candidate
        number += 1


def _note_path(target: Path) -> Path:
    return target.with_name(f"{target.name}.why.txt")


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        status = path.lstat()
    except OSError:
        return None
    return (status.st_dev, status.st_ino)


def _exists(path: Path) -> bool:
    """Like ``Path.exists`` but a dangling symlink counts as existing."""
    return path.is_symlink() or path.exists()
