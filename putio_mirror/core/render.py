"""Render a Plan for people: rows of (action, target, size, why) and a summary line.

Pure: it returns strings and tuples; the CLI decides how to print them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from putio_mirror.core.plan import (
    WINDOWED_KINDS,
    Action,
    AdoptLocal,
    CleanTransfers,
    Download,
    Note,
    Plan,
    TidyStaging,
)
from putio_mirror.core.units import human_bytes
from putio_mirror.core.window import Schedule

_LABELS = {
    "submit": "submit",
    "record": "journal transfer",
    "reject": "reject",
    "archive": "skip duplicate",
    "cancel": "cancel seeding",
    "clean": "clean",
    "download": "download",
    "adopt": "adopt local",
    "place": "place item",
    "delete": "delete remote",
    "tidy": "tidy staging",
}


#: Rows shown per kind of action in a dry run's table unless every row is asked for.
ROWS_PER_KIND = 20

Row = tuple[str, str, str, str]


def plan_rows(plan: Plan, per_kind: int | None = None) -> list[Row]:
    """Given a plan, return one (action, target, size, why) row per action, in order;
    with ``per_kind``, only the first that many of each kind, then one row saying how
    many more there are (a 10,000-file plan stays readable and quick to print)."""
    shown: Counter[str] = Counter()
    rows: list[Row] = []
    for action in plan:
        shown[action.kind] += 1
        if per_kind is None or shown[action.kind] <= per_kind:
            rows.append(_row(action))
    if per_kind is not None:
        rows.extend(
            _more(kind, count - per_kind) for kind, count in shown.items() if count > per_kind
        )
    return rows


def _row(action: Action) -> Row:
    return (_LABELS[action.kind], _target(action), _size(action), _why(action))


def _more(kind: str, hidden: int) -> Row:
    return (_LABELS[kind], f"… and {hidden} more", "", "--all shows every row")


def done_lines(done: Sequence[tuple[str, str]], per_kind: int = ROWS_PER_KIND) -> list[str]:
    """Given the (kind, target) of each action a run did, return a line for each, at most
    ``per_kind`` of each kind and then how many more (``history`` lists them all)."""
    width = max((len(_LABELS[kind]) for kind, _ in done), default=0)
    shown: Counter[str] = Counter()
    lines = []
    for kind, target in done:
        shown[kind] += 1
        if shown[kind] <= per_kind:
            lines.append(f"  {_LABELS[kind]:<{width}}  {target}")
    lines.extend(
        f"  {_LABELS[kind]:<{width}}  … and {count - per_kind} more (`putio-mirror history` "
        "lists every one)"
        for kind, count in shown.items()
        if count > per_kind
    )
    return lines


def plan_json(plan: Plan) -> dict[str, object]:
    """Given a plan, return it as JSON-ready values: every action, the notes, the summary."""
    return {
        "actions": [
            {
                "kind": action.kind,
                "key": action.key,
                "target": _target(action),
                "size": getattr(action, "size", None),
                "why": _why(action),
            }
            for action in plan
        ],
        "notes": [{"level": note.level, "message": note.message} for note in plan.notes],
        "summary": plan_summary(plan),
    }


def _target(action: Action) -> str:
    if isinstance(action, CleanTransfers) and action.names:
        return ", ".join(action.names)
    return action.target


def _size(action: Action) -> str:
    if isinstance(action, Download | AdoptLocal | TidyStaging):
        return human_bytes(action.size)
    return ""


def _why(action: Action) -> str:
    if isinstance(action, Download) and action.resume_from:
        return f"{action.why}; resumes at {human_bytes(action.resume_from)}"
    return action.why


def plan_summary(plan: Plan) -> str:
    """Given a plan, return one line counting its actions by kind and the bytes to fetch."""
    waiting = (
        f"{plan.settling} blackhole {'file' if plan.settling == 1 else 'files'} changed a "
        "moment ago, left for the next run"
        if plan.settling
        else ""
    )
    if not plan.actions:
        if waiting:
            return f"Nothing to do yet: {waiting}."
        levels = {note.level for note in plan.notes}
        if levels & {"warning", "reminder"}:
            return "Nothing to do now; see the notes above."
        if "needs_you" in levels:  # said after the run, with the rest that needs a person
            return "Nothing to do now; something needs you (below)."
        return "Nothing to do: put.io and the local folders are in step."
    counts = Counter(_LABELS[action.kind] for action in plan)
    parts = [f"{count} {label}" for label, count in counts.items()]
    to_fetch = sum(
        action.size - action.resume_from for action in plan if isinstance(action, Download)
    )
    if to_fetch:
        parts.append(f"{human_bytes(to_fetch)} to download")
    return "Plan: " + ", ".join(parts) + (f"; {waiting}." if waiting else ".")


def with_window_note(plan: Plan, schedule: Schedule, now: datetime) -> Plan:
    """Given a dry run's plan, say so when its downloads would wait for a closed window."""
    waiting = sum(1 for action in plan if action.kind in WINDOWED_KINDS)
    if not waiting or schedule.is_open(now):
        return plan
    opening = schedule.next_opening(now)
    message = (
        f"The download window ({schedule.describe()}) is closed now: a real run would defer "
        f"{waiting} download action(s); the next opens {opening:%a %H:%M}."
    )
    return replace(plan, notes=(*plan.notes, Note("warning", message)))
