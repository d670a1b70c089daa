"""The kernel's read-ahead on the mount: 1 MiB per read instead of 128 KiB (Linux, root).

It matters for mirrored files, read through the page cache; a streamed file bypasses
the page cache (``fs.DirectFUSE.open``), so its reads come as the reader makes them.

libfuse cannot raise it: the kernel offers 128 KiB in FUSE_INIT and takes at most what
it offered. The mount's backing device has a sysfs knob, though, and as root it can be
widened; the kernel then sends reads of up to 1 MiB (libfuse 3 negotiates 256 pages a
request). The kernel copies the knob into each file when it is opened, after the
file system answered the open, so the knob is set at the first open, before it is
answered: a reader that opens a file the instant the mount appears gets the wide
read-ahead too (a thread setting it after the mount came up lost that race, and the
first reader, a benchmark's ``dd`` included, kept 128 KiB reads). Not root, not Linux,
no sysfs: nothing changes.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

READ_AHEAD_KB = 1024
MOUNTINFO = Path("/proc/self/mountinfo")
_ESCAPE = re.compile(r"\\([0-7]{3})")


class ReadAheadKnob:
    """Given the mount point, widen the kernel's read-ahead on it once, when first asked."""

    def __init__(self, mount_point: Path, kilobytes: int = READ_AHEAD_KB) -> None:
        self._mount_point = str(mount_point.resolve())
        self._kilobytes = kilobytes
        self._done = False
        self._lock = threading.Lock()

    def widen(self) -> None:
        """Set the knob unless that was tried already (it is tried once, success or not)."""
        if self._done:
            return
        with self._lock:
            if self._done:
                return
            self._done = True
            device = device_of(self._mount_point)
            if device is None:
                logger.debug("mount: kernel read-ahead left as it is (no mount entry)")
                return
            knob = Path(f"/sys/class/bdi/{device}/read_ahead_kb")
            try:
                knob.write_text(str(self._kilobytes))
            except OSError as error:  # not root, no sysfs
                logger.debug("mount: kernel read-ahead left as it is (%s)", error)


def device_of(mount_point: str, mountinfo: Path = MOUNTINFO) -> str | None:
    """Given a mount point, return the ``major:minor`` of what is mounted on it last, read
    from the mount table: a ``stat`` of the mount point would ask this very file system."""
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:  # not Linux
        return None
    found = None
    for line in lines:
        fields = line.split()
        if len(fields) > 4 and _unescape(fields[4]) == mount_point:
            found = fields[2]
    return found


def _unescape(path: str) -> str:
    """The mount table writes a space, tab, newline or backslash in a path as ``\\ooo``."""
    return _ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), path)
