"""Who owns placed items, and their permission bits (the ``files:`` section).

A media manager running as another user must be able to rename and delete what the
mirror places (it moves imports into its library). The owner, group and mode are given
to each file and to each folder made for it *before* it appears in the download folder,
so nobody ever sees a placed file it may not move. Folders get the file mode plus the
search bit wherever the mode lets read (``0664`` → ``0775``), as ``chmod X`` does.
Nothing set: files and folders keep what the process's umask gave them.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from putio_mirror.core.errors import ItemError
from putio_mirror.fetch.partfile import make_folders

_READ_TO_SEARCH = (
    (stat.S_IRUSR, stat.S_IXUSR),
    (stat.S_IRGRP, stat.S_IXGRP),
    (stat.S_IROTH, stat.S_IXOTH),
)


@dataclass(frozen=True, slots=True)
class Ownership:
    """The owner (uid), group (gid) and file mode given to placed items; None: left as is."""

    uid: int | None = None
    gid: int | None = None
    mode: int | None = None

    @property
    def folder_mode(self) -> int | None:
        """The mode of folders: the file mode plus search wherever it lets read."""
        if self.mode is None:
            return None
        return self.mode | sum(search for read, search in _READ_TO_SEARCH if self.mode & read)

    def give(self, path: str | Path, *, folder: bool = False) -> None:
        """Given a file or folder of ours (never a symlink), give it the owner, group and
        mode; raise ItemError if the system refuses."""
        mode = self.folder_mode if folder else self.mode
        try:
            if self.uid is not None or self.gid is not None:
                os.chown(path, _or_keep(self.uid), _or_keep(self.gid), follow_symlinks=False)
            if mode is not None:
                # after chown, which may clear set-id bits; a str path as well as a Path
                os.chmod(path, mode)  # noqa: PTH101
        except OSError as error:
            raise ItemError(
                f"could not give {path} its owner, group or mode: {error.strerror}",
                "check files.owner, files.group and files.mode in the config (changing the "
                "owner needs root; the group must be one this user is in); the verified "
                "files stay in staging and the next run places them",
            ) from error

    def make_folders(self, folder: Path) -> None:
        """Given a folder, make it and any missing parents, each given the folder mode and
        owner as it is made (folders already there are left as they are) and its name
        made durable (``partfile.make_folders``); raise OSError as that does."""
        if self.uid is not None or self.gid is not None or self.mode is not None:
            make_folders(folder, lambda made: self.give(made, folder=True))
        else:
            make_folders(folder)


def _or_keep(number: int | None) -> int:
    return -1 if number is None else number  # -1: chown leaves this one unchanged


#: nothing set: files and folders keep what the umask gives them
AS_IS = Ownership()
