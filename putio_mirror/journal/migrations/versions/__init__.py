"""The revisions, one module per schema version; Alembic loads them by path, in order."""
