"""Alembic's environment script: run the revisions on the connection ``runner`` hands over.

Alembic runs this file for each command; the connection is already in the journal's write
transaction (SQLite: BEGIN IMMEDIATE; PostgreSQL: under the prepare lock), so Alembic opens
none of its own and every step commits or rolls back together.
"""

from __future__ import annotations

from alembic import context

from putio_mirror.journal.schema import metadata

context.configure(connection=context.config.attributes["connection"], target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
