"""Schema 1, the first journal: runs and their actions, submissions, downloads.

Spelled as putio-mirror 0a616ad created it (its ORM models): an empty database upgraded from
here ends where ``create_all`` starts a new journal. Journals of this version from before
Alembic are stamped with this revision, not created by it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "schema_info",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("command", sa.String(64), nullable=False),
        sa.Column("started_at", _time(), nullable=False),
        sa.Column("finished_at", _time()),
        sa.Column("exit_code", sa.Integer),
        sa.Column("summary", sa.Text),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
    )
    op.create_table(
        "actions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("detail", sa.Text),
        sa.Column("started_at", _time(), nullable=False),
        sa.Column("finished_at", _time()),
    )
    for column in ("run_id", "key", "status"):
        op.create_index(f"ix_actions_{column}", "actions", [column])
    op.create_table(
        "submissions",
        sa.Column("info_hash", sa.String(64), primary_key=True),
        sa.Column("transfer_id", sa.BigInteger),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("submitted_at", _time(), nullable=False),
    )
    op.create_table(
        "downloads",
        sa.Column("file_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("relative_path", sa.Text),
        sa.Column("size", sa.BigInteger),
        sa.Column("crc32", sa.String(8)),
        sa.Column("bytes_done", sa.BigInteger, nullable=False),
        sa.Column("verified_at", _time()),
        sa.Column("updated_at", _time()),
        sa.Column("failures", sa.Integer, nullable=False),
    )
