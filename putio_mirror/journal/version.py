"""The journal's schema version and its Alembic revision, told without SQLAlchemy (a dry
run's ``peek`` reads a journal at ``HEAD`` through ``sqlite3`` alone)."""

from __future__ import annotations

#: bumped with every change of the tables (see ``migrations/``); ``schema.py`` re-exports it
SCHEMA_VERSION = 7
# The revision a journal of SCHEMA_VERSION stores in alembic_version.
HEAD = f"{SCHEMA_VERSION:04d}"
