"""Bring a journal to ``HEAD``: create a new one, upgrade an older one, refuse a newer one.

Imported only when a journal is not at ``HEAD`` (see this package's docstring): Alembic is
imported here and nowhere else. Alembic runs from code, the documented way: a ``Config``
built here (``script_location`` is this folder) and the journal's connection handed to
``env.py`` in ``Config.attributes``. That keeps to Alembic's public API (``command.upgrade``,
``command.stamp``), where running revisions without ``env.py`` needs its private helpers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, func, insert, inspect, select, update

from putio_mirror.core.errors import JournalError
from putio_mirror.journal.migrations import HEAD
from putio_mirror.journal.migrations.fresh import hold_prepare_lock
from putio_mirror.journal.schema import SCHEMA_VERSION, metadata, schema_info_table

log = logging.getLogger(__name__)


@contextmanager
def _alembic_quiet() -> Iterator[None]:
    """Keep Alembic's INFO lines (its plugins, its dialect, each step) out of a run's log.

    A new journal would start every first run with half a dozen of them; the one line that
    matters, an upgrade, is ours. Warnings still pass.
    """
    logger = logging.getLogger("alembic")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


with _alembic_quiet():  # its plugins announce themselves at INFO as it is imported
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

# The newest schema a putio-mirror from before Alembic wrote into schema_info.
_LAST_BEFORE_ALEMBIC = 3


def bring_to_head(conn: Connection, shown_url: str) -> None:
    """Given a connection in a write transaction, create or upgrade its journal to ``HEAD``.

    Raise JournalError, changing nothing, if a newer putio-mirror wrote the journal.
    """
    hold_prepare_lock(conn)
    with _alembic_quiet():
        _bring_to_head(conn, alembic_config(conn), shown_url)


def _bring_to_head(conn: Connection, config: Config, shown_url: str) -> None:
    # Asked again under the lock: another process may have done the work meanwhile.
    current = MigrationContext.configure(conn).get_current_heads()
    if not current:
        legacy = _legacy_version(conn)
        if legacy is None:
            _create(conn, config)
            return
        if legacy > _LAST_BEFORE_ALEMBIC:
            raise _newer(shown_url, f"schema {legacy}")
        current = (f"{legacy:04d}",)
        command.stamp(config, current[0])
    if current == (HEAD,):
        return
    known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
    if not set(current) <= known:
        raise _newer(shown_url, f"revision {', '.join(current)}")
    log.info("upgrading the journal %s from revision %s to %s", shown_url, current[0], HEAD)
    command.upgrade(config, HEAD)
    conn.execute(update(schema_info_table).values(version=SCHEMA_VERSION))


def alembic_config(conn: Connection | None = None) -> Config:
    """Given a connection in a transaction, return the Config that runs Alembic on it.

    Without one, the Config only finds the revisions (``ScriptDirectory.from_config``)."""
    config = Config(attributes={"connection": conn})
    config.set_main_option("script_location", str(Path(__file__).parent))
    return config


def _legacy_version(conn: Connection) -> int | None:
    """Given a connection, return the version in ``schema_info``; None if it has none."""
    if not inspect(conn).has_table(schema_info_table.name):
        return None
    found: int | None = conn.execute(
        select(func.max(schema_info_table.c.version))
    ).scalar_one_or_none()
    return found


def _create(conn: Connection, config: Config) -> None:
    """Given an empty database, create the journal's tables at ``HEAD``."""
    metadata.create_all(conn)
    conn.execute(insert(schema_info_table).values(version=SCHEMA_VERSION))
    command.stamp(config, HEAD)


def _newer(shown_url: str, what: str) -> JournalError:
    return JournalError(
        f"the journal {shown_url} was written by a newer putio-mirror "
        f"({what}; this one knows up to schema {SCHEMA_VERSION}, revision {HEAD})",
        "upgrade putio-mirror, or point paths.journal at another database",
    )
