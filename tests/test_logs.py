"""The log file survives logrotate: after a rename the next line goes to a new file."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from putio_mirror.cli.logs import HANDLER_NAME, setup_logging
from putio_mirror.cli.progress import LogProgress
from putio_mirror.core.redaction import hide_secrets


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler.get_name() == HANDLER_NAME:
            root.removeHandler(handler)
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_root_logger")
def test_a_rotated_log_file_is_reopened_at_its_path(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "mirror.log"
    setup_logging(log_file, "INFO", 0, lambda text: hide_secrets(text, ["s3cret-token-0042"]))
    log = logging.getLogger("putio_mirror.test")
    log.info("before rotation")
    log_file.rename(tmp_path / "logs" / "mirror.log.1")  # what logrotate does
    log.info("after rotation, with s3cret-token-0042")
    assert "before rotation" in (tmp_path / "logs" / "mirror.log.1").read_text()
    fresh = log_file.read_text()
    assert "after rotation" in fresh and "before rotation" not in fresh
    assert "s3cret-token-0042" not in fresh


def test_a_secret_too_short_to_be_a_token_does_not_blank_every_word() -> None:

    assert hide_secrets("put.io at test", ["t"]) == "put.io at test"
    assert hide_secrets("token abcdefgh12 here", ["abcdefgh12"]) == "token ******** here"


def quick_files(progress: LogProgress, clock: list[float], count: int, arrived: int = 1000) -> None:
    """Given a progress on ``clock``, run ``count`` files of 1000 bytes, 0.1 s each, of which
    ``arrived`` bytes arrive."""
    for number in range(count):
        progress.begin(f"f{number}", f"sub{number}.srt", 1000, 0)
        if arrived:
            progress.advance(f"f{number}", arrived)
        clock[0] += 0.1
        progress.end(f"f{number}")


def on_clock(caplog: pytest.LogCaptureFixture) -> tuple[LogProgress, list[float]]:
    clock = [0.0]
    caplog.set_level(logging.INFO, logger="putio_mirror.cli.progress")
    return LogProgress(interval=30.0, monotonic=lambda: clock[0]), clock


def test_log_progress_counts_quick_files_and_gives_long_ones_their_own_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    progress, clock = on_clock(caplog)
    quick_files(progress, clock, 400)  # 400 subtitles
    progress.begin("movie", "movie.mkv", 10_000, 0)
    clock[0] += 40.0
    progress.advance("movie", 10_000)
    progress.end("movie")

    lines = [record.getMessage() for record in caplog.records]
    assert lines[0].startswith("sub0.srt: ")  # the first on its own: nothing else to count
    assert len(lines) < 10 and any(line.startswith("movie.mkv: ") for line in lines)
    assert "300 files downloaded (292.97 KiB)" in lines  # the first 30 s after sub0.srt


def test_log_progress_tells_the_quick_files_left_when_the_run_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    progress, clock = on_clock(caplog)
    quick_files(progress, clock, 4)
    progress.flush()
    progress.flush()  # said once
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0].startswith("sub0.srt: ")
    assert lines[1:] == ["3 files downloaded (2.93 KiB)"]


def test_log_progress_never_counts_a_file_that_ended_unfinished_as_downloaded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A node failing mid-file: three quick files end with part of their bytes.
    progress, clock = on_clock(caplog)
    quick_files(progress, clock, 3, arrived=400)
    progress.flush()
    lines = [record.getMessage() for record in caplog.records]
    assert not any("downloaded" in line for line in lines), lines
    assert [line.split(":")[0] for line in lines] == ["sub0.srt", "sub1.srt", "sub2.srt"]


def test_log_progress_says_nothing_of_files_that_got_no_byte(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # put.io's nodes down: every file in flight ends with no byte. The run's result says
    # so once; a "0 B of …" line for each would bury it.
    progress, clock = on_clock(caplog)
    quick_files(progress, clock, 3, arrived=0)
    progress.flush()
    assert caplog.records == []
