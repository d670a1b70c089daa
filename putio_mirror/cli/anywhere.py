"""The group's options (``--config``, ``--verbose``, ``--quiet``) after the command too.

``putio-mirror sync --quiet`` is what a person writes in a crontab; click takes the group's
options only before the command, so that line failed with "No such option" (exit 2) at
every tick, and the mail it sent told of a typo, not of put.io. No command has an option of
these names, so taking them out of the command's part of the line changes no meaning.
"""

from __future__ import annotations

from collections.abc import Sequence

_FLAGS = frozenset({"--quiet", "-q", "--verbose"})
_WITH_VALUE = frozenset({"--config", "-c"})


def _is_group_flag(word: str) -> bool:
    return word in _FLAGS or (len(word) > 1 and word[0] == "-" and set(word[1:]) == {"v"})


def hoisted(args: Sequence[str], commands: frozenset[str]) -> list[str]:
    """Given the words after the program's name and the group's command names, return them
    with the group's options found after the command moved before it."""
    words = list(args)
    start = _command_at(words, commands)
    if start is None:
        return words
    before, after, moved = words[: start + 1], [], []
    rest = iter(words[start + 1 :])
    for word in rest:
        if word == "--":  # what follows is arguments, whatever it looks like
            after += [word, *rest]
            break
        if _is_group_flag(word) or word.startswith("--config="):
            moved.append(word)
        elif word in _WITH_VALUE:
            moved += [word, next(rest, "")]
        else:
            after.append(word)
    return before[:start] + moved + before[start:] + after


def _command_at(words: list[str], commands: frozenset[str]) -> int | None:
    """Where the command is among the words (a config file may bear a command's name)."""
    number = 0
    while number < len(words):
        if words[number] in commands:
            return number
        number += 2 if words[number] in _WITH_VALUE else 1
    return None
