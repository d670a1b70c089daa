"""The documented example config, shipped inside the package, and writing it for a user.

``mirror.example.yaml`` documents every option with its default (a test keeps it in step
with the schema). The package's copy is a symlink to the repository's top-level file, so
there is one text; a wheel holds its content, so ``putio-mirror config init`` can write it
wherever the tool was installed from.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from importlib import resources
from pathlib import Path

from putio_mirror.core.errors import ConfigError

EXAMPLE_NAME = "mirror.example.yaml"
#: the config may hold the token: only its owner reads it
FILE_MODE = 0o600
FOLDER_MODE = 0o700


def example_text() -> str:
    """Return the documented example config, as shipped with this installation."""
    return (
        resources.files(__package__ or "putio_mirror.config")
        .joinpath(EXAMPLE_NAME)
        .read_text(encoding="utf-8")
    )


def write_example(path: Path, *, force: bool) -> None:
    """Given a path, write the example there with mode 0600 (creating its folders, 0700);
    raise ConfigError if a file is there already and ``force`` is not given."""
    if path.is_dir():
        raise ConfigError(f"{path} is a folder", "name the file to write, e.g. mirror.yaml")
    if path.exists() and not force:
        raise ConfigError(
            f"{path} exists already; it was left as it is",
            "pass --force to replace it with the example (its content is lost), or "
            "--path to write the example elsewhere",
        )
    path.parent.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    # A temporary file beside it, renamed over: a crash never leaves half a config.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", text=True)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), FILE_MODE)
            file.write(example_text())
            file.flush()
            os.fsync(file.fileno())
        if force:
            Path(temporary).replace(path)
        else:
            path.hardlink_to(temporary)  # fails if a file appeared there meanwhile
    except FileExistsError:
        raise ConfigError(f"{path} exists already; it was left as it is") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            Path(temporary).unlink()
