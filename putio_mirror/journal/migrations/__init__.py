"""The journal's schema history as Alembic revisions, run from code: no alembic.ini to find.

``HEAD`` is the newest revision. Opening a journal asks its ``alembic_version`` with one query
and, when it says ``HEAD``, imports nothing of Alembic (~60 ms of a timer-started run's start);
a new one is created by ``fresh`` (no Alembic either); only an older or newer journal
imports ``runner``, which upgrades or refuses it.

Revision ``000N`` is schema version N. Journals from before Alembic (schema 1 to 3) carry
their version in ``schema_info``; the runner stamps that revision, then upgrades from it.
``schema_info`` stays, kept at ``SCHEMA_VERSION``, so a putio-mirror from before Alembic
refuses a newer journal instead of taking it for a new one.

To change the schema (say, a new table for version 4):

1. In ``schema.py``, change the ``Table`` objects (a new journal gets them through
   ``create_all``) and bump ``SCHEMA_VERSION`` (in ``version.py``) to 4; ``HEAD`` follows it.
2. Add ``versions/schema_4.py``: copy ``schema_3.py``, set ``revision = "0004"`` and
   ``down_revision = "0003"``, and write ``upgrade()`` with ``alembic.op`` (``op.create_table``
   spelling the columns out: a revision is frozen, it never imports ``schema.py``). Check
   ``op.get_bind().dialect.name`` for what only PostgreSQL needs (SQLite cannot alter a column).
3. Once it is released, capture the journal it creates for the migration tests:
   ``python -m tests.journal_schemas.capture 4 <commit>`` (see that module).
``tests/test_journal_migrations.py`` then proves every released journal upgrades to a layout
equal to a new one, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from putio_mirror.journal.version import HEAD as HEAD
