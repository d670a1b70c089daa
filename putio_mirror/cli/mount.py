"""The ``mount`` command: serve in the foreground, or start a background mount and wait
until it is up.

A background mount is this same command with ``--foreground`` in a new session,
its output appended to ``mount.log`` in the state folder; the command returns once
the folder is mounted, or fails with the child's last words if it never is. Forking
inside libfuse (its own daemon mode) is avoided: a forked Python process with threads
and open connections is not safe.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from putio_mirror.config.settings import Settings
from putio_mirror.local.folders import state_folder

#: How long a background mount may take to come up (listing a large account included).
START_TIMEOUT = 120.0
_LAST_WORDS = 10


def run_mount(
    settings: Settings,
    mount_point: Path,
    *,
    foreground: bool,
    config: Path | None,
    verbose: int,
    echo: Callable[[str], None],
) -> int:
    """Given the settings and the mount point, mount put.io there; return the exit code.

    Raise MountPointError if the mount point is unfit, MountFailedError if FUSE fails.
    """
    from putio_mirror.mount.mounting import check_mount_point, serve

    mount_point = mount_point.absolute()
    check_mount_point(mount_point)
    if foreground:
        serve(settings, mount_point)
        return 0
    pid, log = _spawn(mount_point, config, verbose)
    _wait_until_mounted(pid, mount_point, log)
    echo(f"Mounted put.io on {mount_point} (process {pid}; log: {log}).")
    echo(f"Unmount with: fusermount3 -u {mount_point} (umount on macOS), or kill {pid}")
    return 0


def _spawn(mount_point: Path, config: Path | None, verbose: int) -> tuple[int, Path]:
    """Start ``mount --foreground`` in a new session (Ctrl-C in this terminal must not
    unmount it), output appended to the log; return its pid and the log."""
    argv = [sys.executable, "-m", "putio_mirror"]
    if config is not None:
        argv += ["--config", str(config.absolute())]
    argv += ["-v"] * verbose + ["mount", "--foreground", str(mount_point)]
    log = state_folder() / "mount.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    appending = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log), appending, 0o600),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    # Not subprocess.Popen: the child outlives this process's interest in it by design.
    pid = os.posix_spawn(sys.executable, argv, os.environ, file_actions=actions, setsid=True)
    return pid, log


def _wait_until_mounted(pid: int, mount_point: Path, log: Path) -> None:
    from putio_mirror.mount.mounting import MountFailedError

    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if os.path.ismount(mount_point):
            return
        ended, status = os.waitpid(pid, os.WNOHANG)
        if ended:
            raise MountFailedError(
                f"the mount process ended (exit {os.waitstatus_to_exitcode(status)}) "
                f"before {mount_point} was mounted",
                f"its last words, from {log}:\n{_tail(log)}",
            )
        time.sleep(0.1)
    os.kill(pid, signal.SIGTERM)
    raise MountFailedError(
        f"{mount_point} was not mounted within {START_TIMEOUT:.0f} s",
        f"see {log}; listing put.io may be slow or failing",
    )


def _tail(log: Path) -> str:
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(unreadable)"
    return "\n".join(lines[-_LAST_WORDS:])
