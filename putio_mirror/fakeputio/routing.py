"""How the API host's routes are declared: methods, a path pattern and a handler."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
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


_REGEX_SYNTAX = frozenset("\\()[]{}.*+?^$|")


class RouteTable:
    """Given routes, find those matching a path: routes whose pattern is a plain path first
    (one dict lookup), then those with groups, in the order given. Every request goes through
    here, so it does not try two dozen regular expressions in turn."""

    def __init__(self, routes: tuple[Route, ...]) -> None:
        self._plain: dict[str, list[Route]] = {}
        self._patterns: list[Route] = []
        for candidate in routes:
            text = candidate.pattern.pattern
            if _REGEX_SYNTAX.isdisjoint(text):
                self._plain.setdefault(text, []).append(candidate)
            else:
                self._patterns.append(candidate)

    def matching(self, path: str) -> Iterator[tuple[Route, re.Match[str]]]:
        """Given a request path, yield each route matching all of it, with its match."""
        for candidate in (*self._plain.get(path, ()), *self._patterns):
            match = candidate.pattern.fullmatch(path)
            if match is not None:
                yield candidate, match
