"""Journals as released putio-mirrors created them, captured by ``capture.py``, to replay."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

HERE = Path(__file__).parent


def replay(url: str, version: int, *, rows: bool = True) -> None:
    """Given an empty database's URL, lay out the journal that schema ``version`` created.

    With ``rows`` False, only its tables and its ``schema_info`` row, to fill as a test needs.
    """
    dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
    script = (HERE / f"v{version}.{dialect}.sql").read_text()
    if not rows:
        # Every captured INSERT is one line (pg_dump --inserts, sqlite3's iterdump).
        lines = script.splitlines()
        script = "\n".join(
            line for line in lines if not line.startswith("INSERT") or "schema_info" in line
        )
    if dialect == "sqlite":
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            conn.executescript(script)
        return
    from sqlalchemy import create_engine

    engine = create_engine(url)
    try:
        raw = engine.raw_connection()
        try:
            # No parameters: psycopg sends the whole script as one simple query.
            raw.cursor().execute(script)
            raw.commit()
        finally:
            raw.close()
    finally:
        engine.dispose()
