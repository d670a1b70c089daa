"""Render a Plan for people: rows of (action, target, size, why) and a summary line.

Pure: it returns strings and tuples; the CLI decides how to print them.
"""

from __future__ import annotations

from collections import Counter

from putio_mirror.core.plan import Action, AdoptLocal, CleanTransfers, Download, Plan, TidyStaging
from putio_mirror.core.units import human_bytes

_LABELS = {
    "submit": "submit",
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


def plan_rows(plan: Plan) -> list[tuple[str, str, str, str]]:
    """Given a plan, return one (action, target, size, why) row per action, in order."""
    return [(_LABELS[action.kind], _target(action), _size(action), _why(action)) for action in plan]


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
    if not plan.actions:
        if any(note.level == "warning" for note in plan.notes):
            return "Nothing to do now; see the warnings above."
        return "Nothing to do: put.io and the local folders are in step."
    counts = Counter(_LABELS[action.kind] for action in plan)
    parts = [f"{count} {label}" for label, count in counts.items()]
    to_fetch = sum(
        action.size - action.resume_from for action in plan if isinstance(action, Download)
    )
    if to_fetch:
        parts.append(f"{human_bytes(to_fetch)} to download")
    return "Plan: " + ", ".join(parts) + "."
