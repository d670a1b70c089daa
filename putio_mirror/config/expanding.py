"""Paths as a person writes them in the config: ``~`` and ``$VARS`` expanded.

A variable that is not set is left as written by ``expand`` (a password may hold a
``$``), so the config's reader checks paths with ``unset_problem`` first: under a timer
or a service, variables of a login shell are often missing, and ``$MEDIA/incoming`` would
become a folder named ``$MEDIA`` in the current folder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

_ENV_VAR = re.compile(r"\$(\w+)|\$\{(\w+)\}")


def home(env: Mapping[str, str]) -> Path:
    return Path(env["HOME"]) if env.get("HOME") else Path.home()


def expand(text: str, env: Mapping[str, str]) -> Path:
    """Given a path as written, return it with ``~`` and ``$VARS`` (from ``env``) expanded."""

    def variable(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        return env.get(name, match[0])

    expanded = _ENV_VAR.sub(variable, text)  # an unset one stays as written
    if expanded == "~" or expanded.startswith("~/"):
        return (home(env) / expanded[2:]).absolute()
    return Path(expanded).expanduser().absolute()


def unset_problem(text: str, env: Mapping[str, str]) -> str | None:
    """Given a path as written, return what is wrong with the variables it uses (the
    first one not set, or set empty, which would make it another path), else None."""
    for match in _ENV_VAR.finditer(text):
        name = match[1] or match[2]
        if name not in env:
            return f"uses ${name}, which is not set"
        if not env[name]:
            return f"uses ${name}, which is empty"
    return None
