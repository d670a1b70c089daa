"""The log file survives logrotate: after a rename the next line goes to a new file."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from putio_mirror.cli.logs import HANDLER_NAME, setup_logging
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
