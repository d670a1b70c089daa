"""Where a run reads and writes, and the one check that keeps every write inside it."""

from __future__ import annotations

import os
import posixpath
import pwd
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from putio_mirror.core.errors import LinkLeadsOutError, UnsafePathError
from putio_mirror.local.ownership import AS_IS, Ownership


@dataclass(frozen=True, slots=True)
class Places:
    """The local folders a run reads and writes, and who owns what it places there."""

    blackhole: Path
    downloads: Path
    staging: Path
    ownership: Ownership = AS_IS


def resolve_inside(root: Path, relative: str) -> Path:
    """Given a root and a relative POSIX path, return ``root / relative``.

    Raise UnsafePathError if the path is absolute, names the root itself,
    climbs out with ``..``, or leads out through a symlink that exists inside root.
    """
    return resolve_all_inside(root, [relative])[0]


def resolve_all_inside(root: Path, relatives: Iterable[str]) -> list[Path]:
    """Given a root and relative POSIX paths, check each as ``resolve_inside`` does and
    return them in order; each folder is resolved once (an item of 1,000 files in ten
    folders costs ten walks through the symlinks of their paths, not a thousand)."""
    return Inside(root).all(relatives)


def named_inside(root: Path, relative: str) -> Path:
    """Given a root and a relative POSIX path, return ``root / relative``, refused only by
    its name (UnsafePathError, as ``resolve_inside`` refuses it: absolute, climbing out,
    the root itself), with no look at the disk: to tell where a file placed went."""
    return root / _normal(root, relative)


class Inside:
    """A root whose own path is resolved once, for the many paths a run checks in it as
    ``resolve_inside`` does: resolving the root walks each of its folders with an
    ``lstat`` (40 µs for a root four folders deep), twice a file placed on its own.

    A root moved meanwhile (a folder of its path replaced by a link) leaves the paths
    returned under ``root`` all the same, as before; what is checked against is where
    the root led when this was made, so a path that leads out of it is refused."""

    __slots__ = ("_real_root", "root")

    def __init__(self, root: Path) -> None:
        self.root = root
        self._real_root = root.resolve()

    def one(self, relative: str) -> Path:
        """Given a relative POSIX path, return it under the root (see ``resolve_inside``)."""
        return self.all([relative])[0]

    def all(self, relatives: Iterable[str]) -> list[Path]:
        """Given relative POSIX paths, return them under the root, in order (see
        ``resolve_all_inside``)."""
        root, real_root = self.root, self._real_root
        # a folder's real path, or None where it does not exist: nothing in it is a symlink
        real_folders: dict[str, str | None] = {}
        paths: list[Path] = []
        for relative in relatives:
            normal = _normal(root, relative)
            folder, name = posixpath.split(normal)
            if folder in real_folders:
                real_folder = real_folders[folder]
            else:
                # resolve() follows every symlink that exists (dangling ones too).
                resolved = (root / folder).resolve() if folder else real_root
                if not resolved.is_relative_to(real_root):
                    raise _led_out(root, relative, _first_link(root, folder), resolved)
                real_folder = str(resolved) if os.path.isdir(resolved) else None  # noqa: PTH112
                real_folders[folder] = real_folder
            # A name (no "/", not "..") in a folder inside the root is inside it, unless it
            # is a symlink: then where it leads is checked. One lstat a file, in plain
            # strings; none in a folder not there yet (a new item's: issue 14).
            leaf = None if real_folder is None else posixpath.join(real_folder, name)
            if leaf is not None and os.path.islink(leaf):  # noqa: PTH114  (no Path a file)
                real_path = Path(leaf).resolve()
                if real_path == real_root or not real_path.is_relative_to(real_root):
                    raise _led_out(root, relative, normal, real_path)
            paths.append(root / normal)
        return paths


def _normal(root: Path, relative: str) -> str:
    """Given a root and a relative POSIX path, return the path normalised; raise
    UnsafePathError if it is absolute, names the root itself or climbs out with ``..``."""
    normal = posixpath.normpath(relative) if relative else "."
    climbs = normal in (".", "..") or normal.startswith("../")
    if climbs or posixpath.isabs(normal) or "\x00" in normal:
        raise _unsafe(root, relative)
    return normal


def _first_link(root: Path, folder: str) -> str:
    """Given a root and a folder path in it that leads out, return the first of its
    folders that is a symbolic link (the whole path if none is found: changed meanwhile)."""
    parts = folder.split("/")
    for count in range(1, len(parts) + 1):
        prefix = "/".join(parts[:count])
        if (root / prefix).is_symlink():
            return prefix
    return folder


def _led_out(root: Path, relative: str, link: str, target: Path) -> LinkLeadsOutError:
    return LinkLeadsOutError(
        f"{relative}: {link} is a symbolic link to {target}, out of {root}: not written through",
        "replace the link by a folder (or bind-mount the other disk there, or point "
        "paths.downloads at it): putio-mirror writes only inside the download folder; "
        "what was fetched waits in staging",
        (relative,),
    )


def _unsafe(root: Path, relative: str) -> UnsafePathError:
    return UnsafePathError(
        f"refusing the path {relative!r}: it would leave {root}",
        "This is a bug or a hostile name; nothing was written. Please report it.",
    )


def looks_unmounted(downloads: Path, staging: Path, entries: frozenset[str] | None = None) -> bool:
    """Given the download folder and staging (and the download folder's entries, if read
    already), say whether the download folder looks like a disk not mounted: missing, or
    empty where staging (inside it) was. A disk not mounted leaves its mount point an empty
    folder of the system disk. Call only where files were kept there before."""
    if not downloads.is_dir():
        return True
    empty = not entries if entries is not None else next(downloads.iterdir(), None) is None
    return empty and staging.is_relative_to(downloads)


def nearest_existing(path: Path) -> Path:
    """Given a path that may not exist yet, return it or its nearest ancestor that exists
    (the folder that would hold it, whose filesystem and permissions then apply)."""
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return existing


def why_unwritable(path: Path) -> str:
    """Given an existing path this process may not write, return why, naming it: its
    filesystem is mounted read-only (which stops root too), else who may write it."""
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return f"{path} is on a read-only filesystem"
        found = path.stat()
    except OSError as error:
        return f"{path} cannot be looked at ({error.strerror})"
    return (
        f"{path} is not writable by {_this_user()}: it belongs to uid {found.st_uid}, "
        f"gid {found.st_gid}, mode {stat.filemode(found.st_mode)}"
    )


def _this_user() -> str:
    uid = os.geteuid()
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"
