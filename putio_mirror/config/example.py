"""The documented example config, shipped inside the package, and writing it for a user.

``mirror.example.yaml`` documents every option with its default (a test keeps it in step
with the schema). The package's copy is a symlink to the repository's top-level file, so
there is one text; a wheel holds its content, so ``putio-mirror config init`` can write it
wherever the tool was installed from.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from putio_mirror.core.errors import ConfigError
from putio_mirror.local.durable import write_private_file

EXAMPLE_NAME = "mirror.example.yaml"


def example_text() -> str:
    """Return the documented example config, as shipped with this installation."""
    return (
        resources.files(__package__ or "putio_mirror.config")
        .joinpath(EXAMPLE_NAME)
        .read_text(encoding="utf-8")
    )


def write_example(path: Path, *, force: bool) -> None:
    """Given a path, write the example there with mode 0600 (creating its folders, 0700);
    raise ConfigError if a file is there already and ``force`` is not given, or if it
    cannot be written."""
    if path.is_dir():
        raise ConfigError(f"{path} is a folder", "name the file to write, e.g. mirror.yaml")
    if os.path.lexists(path) and not force:
        raise ConfigError(
            f"{path} exists already; it was left as it is",
            "pass --force to replace it with the example (its content is lost), or "
            "--path to write the example elsewhere",
        )
    # Atomic and private from the first byte: the config may come to hold the token.
    write_private_file(path, example_text())
