"""The ``files:`` section: names of users and groups → ids, the mode → bits, and what stands
in the way of giving them (worded for the config's reader)."""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Callable

from putio_mirror.config.schema import FilesSection
from putio_mirror.local.ownership import Ownership


def ownership_of(files: FilesSection) -> Ownership:
    """Given the section, return the Ownership placement gives (unknown names: left as is;
    ``ownership_problems`` reports them)."""
    return Ownership(
        uid=_id_of(files.owner, _user_id),
        gid=_id_of(files.group, _group_id),
        mode=int(files.mode, 8) if files.mode else None,
    )


def ownership_problems(
    files: FilesSection, source: str, *, may_give: bool = False
) -> tuple[str, ...]:
    """Given the section, return its unknown users and groups; with ``may_give``, also
    what this process may not give (another owner without root, a group it is not in)."""
    problems: list[str] = []
    for key, name, find in (("owner", files.owner, _user_id), ("group", files.group, _group_id)):
        if name is not None and _id_of(name, find) is None:
            problems.append(f"{source}: files.{key}: there is no {key} {name!r} on this system")
    if not may_give or os.geteuid() == 0:
        return tuple(problems)
    wanted = ownership_of(files)
    if wanted.uid is not None and wanted.uid != os.geteuid():
        problems.append(
            f"{source}: files.owner: only root may give files to another user; run "
            "putio-mirror as that user, or give them a group (files.group) and mode instead"
        )
    if wanted.gid is not None and wanted.gid not in {os.getegid(), *os.getgroups()}:
        problems.append(
            f"{source}: files.group: this user is not a member of group {files.group!r}; "
            "add it (usermod -aG), or choose one of its groups"
        )
    return tuple(problems)


def _id_of(name: str | int | None, find: Callable[[str], int | None]) -> int | None:
    """Given a name or number (or None), return the id (None: not given, or unknown)."""
    if name is None:
        return None
    if isinstance(name, int) or name.isdigit():
        return int(name)
    return find(name)


def _user_id(name: str) -> int | None:
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


def _group_id(name: str) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None
