"""Create a new journal at ``HEAD`` without Alembic.

Importing Alembic costs ~0.3 s of CPU, and a new journal needs none of it: its tables come
from ``create_all`` and its revision is one row. So an empty database is created here, the
table Alembic keeps its revision in spelled as Alembic spells it (``MigrationContext``'s
version table: one ``VARCHAR(32)`` column, its primary key named ``alembic_version_pkc``),
and Alembic reads it as it would its own stamp. Any other database (an older or newer
journal, or one whose version tables exist) is left to ``runner``.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    insert,
    inspect,
    text,
)

from putio_mirror.journal.migrations import HEAD
from putio_mirror.journal.schema import SCHEMA_VERSION, metadata, schema_info_table

# Any fixed number: the PostgreSQL advisory lock that queues hosts preparing one database.
PREPARE_LOCK = 0x7075_7469_6F6D

_alembic_version_table = Table(
    "alembic_version",
    MetaData(),  # not the journal's: it is Alembic's table, created here only for a new one
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)


def hold_prepare_lock(conn: Connection) -> None:
    """Given a connection in a write transaction, queue behind other hosts preparing it.

    Hosts opening one new (or old) database at once would race to create the same tables
    and upgrade the same columns; the lock queues them and is let go at commit. SQLite
    needs none: our write transactions are BEGIN IMMEDIATE, one at a time."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": PREPARE_LOCK})


def create_if_new(conn: Connection) -> bool:
    """Given a connection in a write transaction, create the journal at ``HEAD`` if the
    database has neither version table (a new journal); return whether it did."""
    hold_prepare_lock(conn)
    inspector = inspect(conn)
    tables = (_alembic_version_table.name, schema_info_table.name)
    if any(inspector.has_table(name) for name in tables):
        return False
    metadata.create_all(conn)
    conn.execute(insert(schema_info_table).values(version=SCHEMA_VERSION))
    _alembic_version_table.create(conn)
    conn.execute(insert(_alembic_version_table).values(version_num=HEAD))
    return True
