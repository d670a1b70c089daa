"""Where this tool keeps its own files: the config file, and state (the journal, server
journals' run locks, crash reports).

``platformdirs`` knows each platform's places and the XDG variables: on Linux
``~/.config/putio-mirror`` and ``~/.local/state/putio-mirror``, or the same under
``$XDG_CONFIG_HOME`` / ``$XDG_STATE_HOME`` when they are absolute paths (a relative one
is ignored, as the XDG spec says); on macOS ``~/Library/Application Support/putio-mirror``
unless an ``$XDG_*`` variable says otherwise. Read from the process environment at each
call. platformdirs is imported on first use (~3 ms), which a run that names its config
file and journal never makes.
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "putio-mirror"


def config_folder() -> Path:
    """Return the folder of the default config file."""
    import platformdirs

    return platformdirs.user_config_path(APP_NAME, appauthor=False)


def state_folder() -> Path:
    """Return the folder of the default journal and of crash reports."""
    import platformdirs

    return platformdirs.user_state_path(APP_NAME, appauthor=False)


def lock_folder() -> Path:
    """Return the folder for the run locks of server databases: ``$XDG_RUNTIME_DIR``
    itself when it is an absolute path (gone at logout, like the run it guards), else
    the state folder.

    Read by hand: platformdirs' runtime folder appends the app's name, and where
    ``$XDG_RUNTIME_DIR`` is unset it warns and picks ``/run/user/<uid>``, which would
    move the locks of runs started by timers.
    """
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    return Path(runtime) if runtime and Path(runtime).is_absolute() else state_folder()
