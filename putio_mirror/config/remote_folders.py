"""Folders the config names by path (``remote_root: /Movies``) looked up on put.io.

put.io knows folders only by id, and people know them by path; the config takes either.
A path is looked up once per run, one listing per level, so a folder renamed or moved on
put.io is found again by the next run, or its absence is said in words (exit 2), never
taken for the account's root.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from putio_mirror.config.folders import FolderPaths
from putio_mirror.config.settings import Settings
from putio_mirror.core.errors import ConfigError

PATH_HINT = (
    "check the path from the account's root at https://app.put.io/files (its spelling and "
    "case count), or give the folder's id instead"
)


class FolderFinder(Protocol):
    """The part of the put.io client a lookup needs."""

    def folders_named(self, parent_id: int, name: str) -> tuple[int, ...]: ...


def with_folders_found(settings: Settings, finder: FolderFinder) -> Settings:
    """Given settings that may name folders by path, return them with those folders' ids;
    raise ConfigError naming the option and the missing (or ambiguous) part."""
    paths = settings.folder_paths
    if paths == FolderPaths():
        return settings
    policy = settings.policy
    if paths.remote_root is not None:
        root = folder_at(finder, paths.remote_root, "download.remote_root")
        policy = replace(policy, remote_root_id=root)
    save_parent_id = settings.save_parent_id
    if paths.save_parent is not None:
        save_parent_id = folder_at(finder, paths.save_parent, "transfers.save_parent_id")
    return replace(
        settings, policy=policy, save_parent_id=save_parent_id, folder_paths=FolderPaths()
    )


def folder_at(finder: FolderFinder, path: str, option: str) -> int:
    """Given a path from the account's root (``/Movies/HD``), return its folder's id."""
    folder_id, walked = 0, ""
    for name in path.strip("/").split("/"):
        found = finder.folders_named(folder_id, name)
        where = walked or "the account's root"
        if not found:
            raise ConfigError(
                f"{option}: put.io has no folder {path} (no folder {name!r} in {where})", PATH_HINT
            )
        if len(found) > 1:
            raise ConfigError(
                f"{option}: put.io has {len(found)} folders named {name!r} in {where}",
                "rename one of them on put.io, or give the folder's id instead of its path",
            )
        folder_id, walked = found[0], f"{walked}/{name}"
    return folder_id
