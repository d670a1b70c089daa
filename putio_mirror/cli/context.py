"""What the group options decided (config file, verbosity, quiet), handed to every command."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from putio_mirror.config.settings import Settings
    from putio_mirror.putio.client import PutioClient

log = logging.getLogger("putio_mirror")


class Context:
    """What the group options decided, handed to every command."""

    def __init__(self, config: Path | None, verbose: int, quiet: bool = False) -> None:
        self.config = config
        self.verbose = verbose
        self.quiet = quiet

    def settings(
        self,
        *,
        overrides: dict[str, object] | None = None,
        writes: bool = True,
        needs_token: bool = True,
    ) -> Settings:
        """Load the settings; ``writes``: also check the folders a writing run needs;
        ``needs_token``: a missing or unreadable token is an error."""
        from putio_mirror.cli.crash import redact, remember_secret
        from putio_mirror.cli.logs import setup_logging
        from putio_mirror.config.settings import load_settings

        settings = load_settings(
            self.config,
            os.environ,
            overrides=overrides or {},
            check_paths=writes,
            require_token=needs_token,
            token_optional=not needs_token,
        )
        secret = settings.token.reveal() if settings.token else None
        if secret:
            # Whatever its source, the token is kept out of crash reports and printed errors.
            remember_secret(secret)
        verbosity = -1 if self.quiet and not self.verbose else self.verbose  # -1: --quiet
        setup_logging(settings.log_file, settings.log_level, verbosity, redact)
        for warning in settings.warnings:
            log.warning("%s", warning)
        return settings


pass_context = click.make_pass_decorator(Context)


def quick_client(settings: Settings) -> PutioClient:
    """Given settings with a token, return a put.io client that gives up fast (two tries,
    at most 15 s each): for commands a person sits and waits on, such as doctor and status."""
    from putio_mirror.core.retry import Backoff
    from putio_mirror.putio.client import PutioClient

    assert settings.token is not None
    return PutioClient(
        settings.token.reveal(),
        settings.api_url,
        settings.upload_url,
        timeout=min(settings.timeout, 15.0),
        backoff=Backoff(max_attempts=2, cap=2.0),
    )
