"""The blackhole under watch: the kernel's word of new files (watchdog), and a look at the
folders every few seconds where the kernel tells nothing (a network share another machine
writes to); when to look again at files still there. Used by ``cli/watch.py``.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers.api import BaseObserver, ObservedWatch

from putio_mirror.core.errors import MirrorError
from putio_mirror.local.blackhole import candidates, folder_ids, kept_out

log = logging.getLogger(__name__)

WATCHED_SUFFIXES = (".torrent", ".magnet")
#: how long a file must be left alone before it is read (it may still be written)
SETTLE_SECONDS = 2.0
SETTLE_MARGIN = 0.25
#: how soon to look again while files stay in the blackhole after a failure
RECHECK_SECONDS = 30.0


class _Arm(FileSystemEventHandler):
    """Arms the submit timer whenever a .torrent or .magnet appears or changes anywhere
    in the blackhole (a pass tells of one nested too deep). A folder moved in whole is
    told of file by file: watchdog reports what a folder brings into a recursive watch."""

    def __init__(self, arm: Callable[[float], None]) -> None:
        self._arm = arm

    def on_any_event(self, event: FileSystemEvent) -> None:
        paths = (event.src_path, getattr(event, "dest_path", ""))
        if any(str(path).lower().endswith(WATCHED_SUFFIXES) for path in paths):
            self._arm(SETTLE_SECONDS + SETTLE_MARGIN)


class Watched:
    """The blackhole under watchdog's eye. A folder that vanishes (a share unmounted, the
    folder removed and made again) takes its watch with it: once a folder stands there
    again it is watched afresh and looked at at once, or nothing dropped in it would ever
    be seen. It is never made again here: under an unmounted share that would hide the
    share's own folder.

    The kernel tells nothing of a file another host writes into a network share (NFS,
    SMB), where a blackhole often is: every ``LOOK_SECONDS`` the folders are looked at
    too (their modification times: one ``stat`` each), and a change arms a pass."""

    def __init__(
        self,
        observer: BaseObserver,
        folder: Path,
        keep_out: tuple[Path, ...],
        arm: Callable[[float], None],
        monotonic: Callable[[], float],
    ) -> None:
        self._observer, self.folder, self._arm = observer, folder, arm
        self._monotonic = monotonic
        #: the download folder and staging: never looked into, even inside the blackhole
        self.keep_out = keep_out
        self._identity = _identity(folder)
        self._watch: ObservedWatch | None = self._schedule()
        self._times = _folder_times(folder, keep_out)
        self._next_look = monotonic() + LOOK_SECONDS

    def looked(self) -> None:
        """A pass looked at the blackhole: what it holds now is known."""
        self._times = _folder_times(self.folder, self.keep_out)

    def check(self) -> None:
        """Given nothing, notice the folder gone (said once) or back (watched again), or
        changed where the kernel did not tell (a pass is armed)."""
        identity = _identity(self.folder)
        if identity == self._identity:
            self._look()
            return
        if identity is None:
            log.warning(
                "the blackhole %s is gone; nothing is submitted until it is back "
                "(is its disk or share mounted?)",
                self.folder,
            )
        elif not self._watch_again():
            return  # gone again meanwhile: the next check tries again
        self._identity = identity

    def _watch_again(self) -> bool:
        if self._watch is not None:
            self._observer.unschedule(self._watch)
            self._watch = None
        try:
            self._watch = self._schedule()
        except OSError:
            return False
        log.info("the blackhole %s is back: watching it again", self.folder)
        self._arm(0.0)  # what was dropped in it meanwhile
        return True

    def _schedule(self) -> ObservedWatch:
        # Recursive: files are taken from the blackhole's folders too (and told of deeper);
        # not over a download folder inside it (a watch a folder of the library: the
        # kernel's limit), where the folders' own look (``_look``) sees to the rest.
        handler = _Arm(self._arm)
        inside = any(_holds(self.folder, folder) for folder in self.keep_out)
        return self._observer.schedule(handler, str(self.folder), recursive=not inside)

    def _look(self) -> None:
        now = self._monotonic()
        if now < self._next_look:
            return
        self._next_look = now + LOOK_SECONDS
        times = _folder_times(self.folder, self.keep_out)
        if times != self._times:
            self._times = times
            self._arm(SETTLE_SECONDS + SETTLE_MARGIN)


#: how often the blackhole's folders are looked at for a change the kernel did not tell
LOOK_SECONDS = 3.0


def _folder_times(folder: Path, keep_out: tuple[Path, ...]) -> tuple[tuple[str, int], ...]:
    """Given the blackhole and the folders not to look into, return the modification time
    of it and of each folder a pass takes files from (a file made, moved in or away
    changes its folder's)."""
    ours = folder_ids(keep_out)
    try:
        times = [("", folder.stat().st_mtime_ns)]
        with os.scandir(folder) as entries:
            for entry in entries:
                hidden = entry.name.startswith(".")
                if hidden or not entry.is_dir(follow_symlinks=False) or kept_out(entry, ours):
                    continue
                times.append((entry.name, entry.stat(follow_symlinks=False).st_mtime_ns))
    except OSError:  # gone, or gone meanwhile: ``check`` tells
        return ()
    return tuple(sorted(times))


def _holds(folder: Path, other: Path) -> bool:
    """Whether ``other`` is ``folder`` or lies inside it (links resolved)."""
    try:
        return other.resolve().is_relative_to(folder.resolve())
    except OSError:
        return False


def _identity(folder: Path) -> tuple[int, int] | None:
    """The folder's (device, inode), None if no folder stands there now."""
    try:
        status = folder.stat()
    except OSError:
        return None
    return (status.st_dev, status.st_ino) if stat.S_ISDIR(status.st_mode) else None


def recheck_delay(folder: Path, now: float, keep_out: tuple[Path, ...] = ()) -> float | None:
    """Files still in the blackhole (or its folders) are either settling (look again soon)
    or failed (later); a folder gone has nothing to look at (``Watched`` arms the timer
    when it is back)."""
    try:
        paths = candidates(folder, keep_out)
    except MirrorError:
        return None
    ages = []
    for path in paths:
        try:
            if path.is_file():
                ages.append(now - path.stat().st_mtime)
        except OSError:
            continue  # gone meanwhile
    if not ages:
        return None
    if min(ages) < SETTLE_SECONDS:
        return SETTLE_SECONDS - min(ages) + SETTLE_MARGIN
    return RECHECK_SECONDS
