"""Where a run reads and writes, and the one check that keeps every write inside it."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path

from putio_mirror.core.errors import UnsafePathError
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
    normal = posixpath.normpath(relative) if relative else "."
    climbs = normal in (".", "..") or normal.startswith("../")
    if climbs or posixpath.isabs(normal) or "\x00" in normal:
        raise _unsafe(root, relative)
    path = root / normal
    real_root = root.resolve()
    # resolve() follows every symlink that exists (dangling ones too).
    real_path = path.resolve()
    if real_path == real_root or not real_path.is_relative_to(real_root):
        raise _unsafe(root, relative)
    return path


def _unsafe(root: Path, relative: str) -> UnsafePathError:
    return UnsafePathError(
        f"refusing the path {relative!r}: it would leave {root}",
        "This is a bug or a hostile name; nothing was written. Please report it.",
    )


def nearest_existing(path: Path) -> Path:
    """Given a path that may not exist yet, return it or its nearest ancestor that exists
    (the folder that would hold it, whose filesystem and permissions then apply)."""
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return existing
