"""put.io folders as the config names them: by id (``12``) or by path from the account's
root (``/Movies``). A path is kept, to be looked up once a client exists
(``remote_folders.py``); until then its id is UNRESOLVED."""

from __future__ import annotations

from dataclasses import dataclass

#: the folder id standing for a folder the config names by path until it is looked up on
#: put.io: no put.io file has it, so a run that forgot to look it up finds nothing to mirror
#: and says so (``remote_root_problem``), rather than mirroring the whole account
UNRESOLVED = -1


@dataclass(frozen=True)
class FolderPaths:
    """put.io folders the config names by path (``remote_root: /Movies``); looked up with
    the client (``remote_folders.py``), as put.io itself only knows ids."""

    remote_root: str | None = None
    save_parent: str | None = None


def folder_path(ref: int | str | None) -> str | None:
    """Given a folder as the config names it, return its path if it is one below the root
    (``/Movies/HD/`` → ``/Movies/HD``), None for an id or the root itself."""
    if not isinstance(ref, str):
        return None
    parts = [part for part in ref.split("/") if part]
    return "/" + "/".join(parts) if parts else None


def folder_id(ref: int | str | None) -> int | None:
    """Given a folder as the config names it, return its id: UNRESOLVED for a path below the
    root, 0 for the root (``/``)."""
    if isinstance(ref, str):
        return UNRESOLVED if folder_path(ref) else 0
    return ref
