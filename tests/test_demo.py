"""The README's first command, ``make demo``: every job against the local put.io, and
what a person reads of it."""

from __future__ import annotations

from putio_mirror.cli.demo import run_demo


def test_the_demo_runs_every_job_and_says_why_a_run_exits_11() -> None:
    lines: list[str] = []
    assert run_demo(keep=False, echo=lines.append) == 0, "\n".join(lines)
    text = "\n".join(lines)
    assert "Demo finished: every job ran against the local put.io." in text
    # the rejected torrent earns exit 11; the person reading is told what it needs
    added = text.index("$ putio-mirror torrents add")
    groomed = text.index("$ putio-mirror transfers groom")
    step = text[added:groomed]
    assert "(exit 11)" in step
    assert "needs you: blackhole file broken.torrent rejected" in step and "hint: " in step
    assert "Sintel (2010)/Sintel.2010.mkv" in text.split("Files now in")[1]
