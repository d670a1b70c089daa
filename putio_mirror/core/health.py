"""What ``doctor`` and ``status`` say, given what they found: findings and their lines.

Pure: the commands gather the facts (files, the journal, put.io, the clock) and hand
them here as values.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from putio_mirror.core.window import Schedule

_WEEKDAY_TIME = "%a %H:%M"


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing checked: what, what was found, and whether it is a problem (with a hint)."""

    topic: str
    text: str
    problem: bool = False
    hint: str = ""


def ok(topic: str, text: str) -> Finding:
    return Finding(topic, text)


def problem(topic: str, text: str, hint: str) -> Finding:
    return Finding(topic, text, problem=True, hint=hint)


def finding_lines(findings: Iterable[Finding]) -> Iterator[str]:
    """Given findings, yield one line each (``ok`` or ``PROBLEM``) and a hint line per problem."""
    for finding in findings:
        mark = "PROBLEM" if finding.problem else "ok     "
        yield f"{mark} {finding.topic}: {finding.text}"
        if finding.problem and finding.hint:
            yield f"        hint: {finding.hint}"


def problem_count(findings: Iterable[Finding]) -> int:
    return sum(1 for finding in findings if finding.problem)


def describe_windows(schedule: Schedule, now: datetime) -> str:
    """Given the schedule and the local time, say when downloads may run, in local time."""
    if schedule.always_open:
        return "downloads may run at any time (no windows)"
    zone = now.strftime("%Z") or now.strftime("UTC%z")
    windows = f"{schedule.describe()} ({zone})"
    opening = schedule.next_opening(now)
    if opening <= now:
        return f"{windows}; open now"
    return f"{windows}; closed now, next opens {opening.strftime(_WEEKDAY_TIME)}"
