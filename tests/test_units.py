"""One formatter for byte counts and rates, in binary units, wherever people read them."""

from __future__ import annotations

import io

import pytest

from putio_mirror.core.units import human_bytes, human_rate

K, M, G, T = 1024, 1024**2, 1024**3, 1024**4


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1 KiB"),
        (1536, "1.5 KiB"),
        (5 * M, "5 MiB"),
        (int(1.25 * G), "1.25 GiB"),
        (G - 1, "1 GiB"),  # rounds up into the next unit, never "1024 MiB"
        (3 * T, "3 TiB"),
        (2048 * 1024 * T, "2048 PiB"),
    ],
)
def test_human_bytes_uses_binary_units(count: int, text: str) -> None:
    assert human_bytes(count) == text


def test_a_rate_uses_the_same_units_per_second() -> None:
    assert human_rate(1000) == "1000 B/s"
    assert human_rate(2.5 * M) == "2.5 MiB/s"


def test_bars_say_mib_per_second_next_to_mib() -> None:
    from rich.console import Console
    from rich.progress import Progress

    from putio_mirror.cli.progress import _byte_columns

    with Progress(*_byte_columns(), console=Console(file=io.StringIO())) as bars:
        task = bars.add_task("x", total=4 * M, completed=M)
        rendered = [str(column.render(bars.tasks[task])) for column in bars.columns]
    assert rendered == ["1 MiB / 4 MiB", "?"]
