"""Paths as a person writes them in the config: ``~`` and ``$VARS`` expanded."""

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

    expanded = _ENV_VAR.sub(variable, text)
    if expanded == "~" or expanded.startswith("~/"):
        return (home(env) / expanded[2:]).absolute()
    return Path(expanded).expanduser().absolute()
