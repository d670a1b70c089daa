"""How the API host's routes are declared: methods, a path pattern and a handler."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from putio_mirror.fakeputio.forms import Form
from putio_mirror.fakeputio.replies import Reply
from putio_mirror.fakeputio.world import World

Handler = Callable[[World, Form, "re.Match[str]"], Reply]


@dataclass(frozen=True)
class Route:
    """One endpoint: the methods it answers, its full path pattern and its handler."""

    methods: frozenset[str]
    pattern: re.Pattern[str]
    handler: Handler
    auth: bool = True


def route(methods: str, pattern: str, handler: Handler, auth: bool = True) -> Route:
    """Given "GET|HEAD"-style methods and a path regex, return a route matching whole paths."""
    return Route(frozenset(methods.split("|")), re.compile(pattern), handler, auth)
