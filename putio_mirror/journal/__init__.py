"""The journal: every run, action and file's lifecycle in SQLAlchemy (SQLite or PostgreSQL).

Only this package touches SQLAlchemy; ``store.Journal`` is its face to the rest.
"""
