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
    """Return the folder for the run locks of server databases: the state folder.

    Not ``$XDG_RUNTIME_DIR``: a login session has one, a system service or cron job has
    none, so a ``serve`` under systemd and a ``sync`` typed over ssh would each lock a file
    of their own and run side by side. And the lock's ``.owner`` record (what a run after
    a crash frees at once) must outlive the reboot after a power cut, which a runtime
    folder (a tmpfs) does not.
    """
    return state_folder()


def default_journal() -> Path:
    """Return the SQLite journal's file when the config names none: in the state folder,
    on a local disk as SQLite needs (``local/mounts``)."""
    return state_folder() / "journal.sqlite3"
