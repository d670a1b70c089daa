"""Byte counts and rates in words, in binary units: ``1023 B``, ``1.5 KiB``, ``2 MiB/s``.

The one formatter for sizes and speeds shown to people (plans, progress, errors,
bandwidth limits). Pure: no I/O.
"""

from __future__ import annotations

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(count: float) -> str:
    """Given a number of bytes, return it in binary units with at most two decimals,
    trailing zeros dropped (``0 B``, ``1023 B``, ``1.5 KiB``, ``5 MiB``, ``1.25 GiB``)."""
    if abs(count) < 1024:
        return f"{int(count)} B"
    value = count / 1024
    for unit in _UNITS[:-1]:
        if abs(round(value, 2)) < 1024:
            return f"{_decimal(value)} {unit}"
        value /= 1024
    return f"{_decimal(value)} {_UNITS[-1]}"


def human_rate(bytes_per_second: float) -> str:
    """Given bytes per second, return it in the same units per second (``2 MiB/s``)."""
    return f"{human_bytes(bytes_per_second)}/s"


def _decimal(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")
