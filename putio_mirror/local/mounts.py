"""Which filesystem holds a path, and whether it is one SQLite cannot trust: a network
share or a FUSE filesystem.

Python has no ``statfs``; Linux says what is mounted where in ``/proc/self/mountinfo``
(one line a mount: ``36 35 98:0 /root /mount/point opts [tags] - type source opts``; a
space, tab, newline or backslash in a path written as ``\\040`` and the like). The mount
holding a path is the one at the longest mount point that is a prefix of it, preferring
those on the path's own device (a mount hidden under a later one over its parent is not
it). A bind mount is told by its mount point, never by its root (the folder of the
filesystem it shows), so a share bound into a container shows the share's type. Where
there is no such file (macOS, the BSDs), the filesystem is unknown: None, never an error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from putio_mirror.local.paths import looks_unmounted, nearest_existing

MOUNTINFO = Path("/proc/self/mountinfo")
#: the disks and shares the system mounts (at boot, on demand or by hand)
FSTAB = Path("/etc/fstab")

Sharing = Literal["network", "FUSE"]

#: The one judgement of which filesystems SQLite cannot trust with a journal: its WAL maps
#: its ``-shm`` file as memory shared by every process that opens the journal and locks it
#: with fcntl, so "all processes using a database must be on the same host computer; WAL
#: does not work over a network filesystem" (sqlite.org/wal.html; sqlite.org/lockingv3.html
#: on broken NFS locks). A type not here is local (None), except ``fuse`` and ``fuse.*``
#: (any other FUSE daemon: ``sharing_of``).
SHARING: Mapping[str, Sharing | None] = {
    # network shares: the files live on another machine, which keeps neither the -shm
    # memory nor (reliably) the locks for this host's processes
    **dict.fromkeys(
        (
            "nfs",
            "nfs4",
            "cifs",
            "smb3",
            "smbfs",
            "smb",
            "ceph",
            "glusterfs",
            "afs",
            "lustre",
            "coda",
            "ncpfs",
            "davfs",
            "beegfs",
            "gpfs",
            "orangefs",
        ),
        "network",
    ),
    # a host's folder shared into a VM: the host and each guest are kernels of their own,
    # and the guest's locks and shared mmap reach the host's side only as far as the
    # sharing daemon is set to carry them (virtiofsd's POSIX locks, DAX), which nothing in
    # mountinfo tells: said as a network share, which to SQLite it is
    **dict.fromkeys(("9p", "vboxsf", "virtiofs"), "network"),
    # cluster filesystems: one shared disk mounted by several hosts at once; the -shm is
    # memory on each host and never shared between them, whatever the cluster's own locks
    **dict.fromkeys(("ocfs2", "gfs2"), "network"),
    # FUSE daemons whose files are elsewhere: said as a network share, more telling than FUSE
    **dict.fromkeys(
        (
            "fuse.sshfs",
            "fuse.rclone",
            "fuse.s3fs",
            "fuse.gcsfuse",
            "fuse.davfs2",
            "fuse.smbnetfs",
            "fuse.glusterfs",
            "fuse.ceph-fuse",
            "fuse.juicefs",
            "fuse.curlftpfs",
        ),
        "network",
    ),
    # FUSE daemons of a local block device (ntfs-3g, exfat-fuse: the kernel's ``fuseblk``,
    # ``fuseblk.<subtype>`` where one is named): not flagged. One disk, one host: every
    # process that opens the journal is on this host, the daemon pages the files through
    # the kernel's page cache (no ``direct_io``), so the -shm maps as shared memory, and the
    # kernel keeps the fcntl locks itself when the daemon implements none. SQLite's
    # conditions hold as on ext4; a disk shared with Windows (dual boot) is no share.
    "fuseblk": None,
}


_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True, slots=True)
class Mount:
    """One line of mountinfo: where it is mounted, what, and from where."""

    mount_point: str
    fstype: str
    source: str
    #: the folder of its filesystem shown at the mount point (not ``/``: a bind mount)
    root: str
    device: tuple[int, int]

    @property
    def sharing(self) -> Sharing | None:
        return sharing_of(self.fstype)

    def describe(self) -> str:
        """Say what it is, for a message: "a FUSE filesystem (fuse.mergerfs at /mnt/pool)"."""
        kind = {"network": "a network filesystem", "FUSE": "a FUSE filesystem"}
        what = kind.get(self.sharing or "", "a filesystem")
        return f"{what} ({self.fstype} at {self.mount_point})"


def sharing_of(fstype: str) -> Sharing | None:
    """Given a filesystem type as mountinfo spells it, say whether it is a network share,
    a FUSE filesystem (whose daemon may break the shared ``mmap`` SQLite's WAL needs: a
    mergerfs pool without its page cache, ``direct_io``), or neither (None), as
    ``SHARING`` judges it."""
    family = fstype.split(".", 1)[0]  # fuseblk.exfat is judged as fuseblk
    if fstype in SHARING:
        return SHARING[fstype]
    if family == "fuseblk":
        return SHARING["fuseblk"]
    if family == "fuse":
        return "FUSE"
    return None


def parse_mountinfo(text: str) -> list[Mount]:
    """Given the text of a mountinfo file, return its mounts in its order (later ones on
    top of earlier ones at the same point); a line not in its shape is skipped."""
    return [mount for line in text.splitlines() if (mount := _parse_line(line)) is not None]


def _parse_line(line: str) -> Mount | None:
    fields = line.split(" ")
    try:
        separator = fields.index("-", 6)  # optional tags (shared:1, master:2) come before
        major, minor = fields[2].split(":")
        return Mount(
            mount_point=_unescape(fields[4]),
            fstype=_unescape(fields[separator + 1]),
            source=_unescape(fields[separator + 2]),
            root=_unescape(fields[3]),
            device=(int(major), int(minor)),
        )
    except (ValueError, IndexError):
        return None


def _unescape(field: str) -> str:
    return _ESCAPE.sub(lambda octal: chr(int(octal.group(1), 8)), field)


def mount_holding(
    path: str, mounts: Sequence[Mount], device: tuple[int, int] | None = None
) -> Mount | None:
    """Given an absolute path with no link in it, the mounts, and the device the path is
    on (if known), return the mount that holds it: at the longest mount point above it,
    the topmost there; among those on its device first, if any is."""
    above = [mount for mount in mounts if _is_under(path, mount.mount_point)]
    on_device = [mount for mount in above if mount.device == device]
    candidates = on_device or above
    if not candidates:
        return None
    longest = max(len(mount.mount_point) for mount in candidates)
    return [mount for mount in candidates if len(mount.mount_point) == longest][-1]


def _is_under(path: str, mount_point: str) -> bool:
    if mount_point == "/":
        return path.startswith("/")
    return path == mount_point or path.startswith(mount_point.rstrip("/") + "/")


def filesystem_of(path: Path, mountinfo: Path = MOUNTINFO) -> Mount | None:
    """Given a path that may not exist yet, return the mount that holds it (or would);
    None where that cannot be told (no mountinfo: not Linux), never an error."""
    try:
        text = mountinfo.read_text(encoding="utf-8", errors="surrogateescape")
        # links resolved first, a dangling one too (SQLite makes the file where it points)
        existing = nearest_existing(Path(os.path.realpath(path)))
        found = existing.stat().st_dev
    except (OSError, ValueError):
        return None
    return mount_holding(str(existing), parse_mountinfo(text), (os.major(found), os.minor(found)))


def shared_filesystem(path: Path, mountinfo: Path = MOUNTINFO) -> Mount | None:
    """Given a path, return the mount that holds it if it is a network share or a FUSE
    filesystem; None if it is neither, or unknown."""
    mount = filesystem_of(path, mountinfo)
    return mount if mount is not None and mount.sharing is not None else None


def unmounted_mount_point(
    path: Path, fstab: Path = FSTAB, mountinfo: Path = MOUNTINFO
) -> str | None:
    """Given a path, return the mount point ``fstab`` names for the disk that holds it if
    that disk is not mounted now (a USB disk not plugged in at boot, a share that did not
    come up): what is written there goes to the disk below, hidden once it is mounted.
    None if it is mounted, fstab names no mount point above the path but the root, or
    either file cannot be read (not Linux)."""
    try:
        table = fstab.read_text(encoding="utf-8", errors="surrogateescape")
        mounted = mountinfo.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return None
    where = os.path.realpath(path)  # a link leads to the disk that holds the files
    points = [point for point in _fstab_points(table) if point != "/" and _is_under(where, point)]
    if not points:
        return None
    point = max(points, key=len)
    return None if point in {mount.mount_point for mount in parse_mountinfo(mounted)} else point


def _fstab_points(text: str) -> list[str]:
    """Given the text of an fstab, return the mount points it names (swap left out)."""
    points = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3 or fields[0].startswith("#") or fields[2] == "swap":
            continue
        point = _unescape(fields[1])
        if point.startswith("/"):
            points.append(point.rstrip("/") or "/")
    return points


def why_not_mounted(
    downloads: Path,
    staging: Path,
    kept_before: Callable[[], bool],
    entries: frozenset[str] | None = None,
) -> str | None:
    """Given the download folder and staging, whether this host kept files there before
    (asked only if need be), and the download folder's entries if read already: say why
    the download folder looks like a disk not mounted, or None. The one rule of runs
    (``app/observe``) and ``doctor``: fstab names the disk that holds either folder and it
    is not mounted, or files were kept there and it is gone, or empty where staging was."""
    for name, folder in (("download folder", downloads), ("staging", staging)):
        if (point := unmounted_mount_point(folder)) is not None:
            return f"the {name} {folder} is on {point}, which /etc/fstab names but is not mounted"
    if looks_unmounted(downloads, staging, entries) and kept_before():
        return f"the download folder {downloads} is gone or empty, though files were placed there"
    return None
