"""``hooks.on_item_placed``: run the user's command after an item is placed.

The command is the config's list of arguments, run without a shell; the item's path, name
and put.io id reach it only through the environment, so no name put.io sends can ever
become shell syntax. It runs in a session of its own: at its timeout the whole process
group is killed, children included.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping

from putio_mirror.notify.values import ItemPlaced

PATH_VAR = "PUTIO_MIRROR_ITEM_PATH"
NAME_VAR = "PUTIO_MIRROR_ITEM_NAME"
ID_VAR = "PUTIO_MIRROR_ITEM_ID"
EVENT_VAR = "PUTIO_MIRROR_EVENT"
#: how much of the command's error output a warning quotes
_TAIL = 300


def hook_environment(item: ItemPlaced, base: Mapping[str, str]) -> dict[str, str]:
    """Given a placed item and the process's environment, return the command's environment."""
    return {
        **base,
        EVENT_VAR: item.event,
        PATH_VAR: item.path,
        NAME_VAR: item.name,
        ID_VAR: str(item.item_id),
    }


def run_hook(argv: tuple[str, ...], item: ItemPlaced, timeout: float) -> str | None:
    """Given the command, a placed item and a timeout in seconds, run the command; return
    what went wrong (None: it exited 0). Never raises for the command's own failure."""
    try:
        process = subprocess.Popen(
            argv,
            env=hook_environment(item, os.environ),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as error:
        return f"cannot start {argv[0]}: {error.strerror or error}"
    try:
        _, errors = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        return f"{argv[0]} was killed after {timeout:g} s (hooks.timeout_seconds)"
    if process.returncode != 0:
        said = errors.decode("utf-8", "replace").strip()[-_TAIL:]
        return f"{argv[0]} exited {process.returncode}" + (f": {said}" if said else "")
    return None


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended on its own meanwhile
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()  # reap it; the group is gone, so its pipe closes
