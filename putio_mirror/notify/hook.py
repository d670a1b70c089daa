"""``hooks.on_item_placed``: run the user's command after an item is placed.

The command is the config's list of arguments, run without a shell; the item's path, name
and put.io id reach it only through the environment, so no name put.io sends can ever
become shell syntax. It runs in a session of its own: at its timeout the whole process
group is killed, children included.

Its error output goes to an unnamed temporary file, not a pipe: a job the command leaves
running in the background (``scan "$PUTIO_MIRROR_ITEM_PATH" &``) inherits it and would
hold a pipe open, so waiting for its end would wait for the job; and only the file's tail
is read, however much was written.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from typing import IO

from putio_mirror.notify.values import ItemPlaced, Trouble

PATH_VAR = "PUTIO_MIRROR_ITEM_PATH"
NAME_VAR = "PUTIO_MIRROR_ITEM_NAME"
ID_VAR = "PUTIO_MIRROR_ITEM_ID"
EVENT_VAR = "PUTIO_MIRROR_EVENT"
#: how much of the command's error output a warning quotes
_TAIL = 300
#: how often a running command's wait looks whether the run is to stop
_LOOK_EVERY_SECONDS = 0.1


def hook_environment(item: ItemPlaced, base: Mapping[str, str]) -> dict[str, str]:
    """Given a placed item and the process's environment, return the command's environment."""
    return {
        **base,
        EVENT_VAR: item.event,
        PATH_VAR: item.path,
        NAME_VAR: item.name,
        ID_VAR: str(item.item_id),
    }


def run_hook(
    argv: tuple[str, ...],
    item: ItemPlaced,
    timeout: float,
    stop: threading.Event | None = None,
) -> Trouble | None:
    """Given the command, a placed item, a timeout in seconds and what tells the run to
    stop (then the command is killed), run the command; return what went wrong (None: it
    exited 0). Never raises for the command's own failure."""
    with tempfile.TemporaryFile() as errors:
        try:
            process = subprocess.Popen(
                argv,
                env=hook_environment(item, os.environ),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                start_new_session=True,
            )
        except OSError as error:
            return Trouble(f"cannot start {argv[0]}: {error.strerror or error}")
        returncode = _wait(process, timeout, stop or threading.Event())
        if returncode is None:
            _kill_group(process)
            if stop is not None and stop.is_set():
                return Trouble(f"{argv[0]} was killed: the run was told to stop", silent=True)
            killed = f"{argv[0]} was killed after {timeout:g} s (hooks.timeout_seconds)"
            return Trouble(killed, silent=True)
        if returncode != 0:
            said = _tail(errors)
            return Trouble(f"{argv[0]} exited {returncode}" + (f": {said}" if said else ""))
    return None


def _wait(process: subprocess.Popen[bytes], timeout: float, stop: threading.Event) -> int | None:
    """Given a command running, wait for its end; return its code, None if it did not end
    within ``timeout`` seconds or before ``stop`` was set (looked at between short waits:
    a run told to stop must not wait out a hook's timeout, five minutes by default)."""
    deadline = time.monotonic() + timeout
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            return process.wait(timeout=min(left, _LOOK_EVERY_SECONDS))
        except subprocess.TimeoutExpired:
            pass
    return None


def _tail(errors: IO[bytes]) -> str:
    """Given the command's error output, return its last words."""
    size = errors.seek(0, os.SEEK_END)
    errors.seek(max(0, size - 4 * _TAIL))  # enough bytes for _TAIL characters, mostly
    return errors.read().decode("utf-8", "replace").strip()[-_TAIL:]


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended on its own meanwhile
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()  # reap it
