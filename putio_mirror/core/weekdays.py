"""Days of the week as a config names them, for download windows and bandwidth timetables.

One rule for both: a day is its full English name or its three-letter abbreviation, in
any case (``Mon``, ``monday``, ``SUN``); anything else is refused with the names to
use. Pure: no I/O.
"""

from __future__ import annotations

MINUTES_PER_DAY = 24 * 60
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
FULL_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_INDEX = {
    name.lower(): index for names in (DAY_NAMES, FULL_DAY_NAMES) for index, name in enumerate(names)
}


def parse_weekday(text: str) -> int:
    """Given a day's full name or three-letter abbreviation (any case), return its
    index (0 = Monday … 6 = Sunday); raise ValueError naming what to write instead."""
    index = _INDEX.get(text.strip().lower())
    if index is not None:
        return index
    guess = _INDEX.get(text.strip()[:3].lower())
    hint = f"did you mean {DAY_NAMES[guess]}? " if guess is not None else ""
    raise ValueError(
        f"{text!r} is not a day of the week: {hint}write Mon, Tue, Wed, Thu, Fri, Sat, Sun "
        "or the full name (Monday … Sunday)"
    )
