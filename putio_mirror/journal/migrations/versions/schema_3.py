"""Schema 3: Text keys and commands, a per-file lifecycle, owners on runs and actions.

(putio-mirror e5768de.) Every added column is nullable, so ``ADD COLUMN`` fills old rows
with NULL on both databases. Only PostgreSQL enforces ``VARCHAR(n)``; turning it into
``TEXT`` there is binary-compatible (no table rewrite). SQLite ignores the lengths and cannot
alter a column in place, so its columns keep their declared ``VARCHAR(n)``: the same text.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The columns PostgreSQL must widen to Text: (table, column, old length).
_WIDENED = (
    ("runs", "command", 64),
    ("runs", "host", 255),
    ("actions", "key", 255),
    ("claims", "key", 255),
    ("claims", "owner", 255),
)


def upgrade() -> None:
    op.add_column("runs", sa.Column("owner", sa.Text))
    op.add_column("actions", sa.Column("owner", sa.Text))
    # In this order, the order of a new journal's columns.
    op.add_column("downloads", sa.Column("placed_at", sa.DateTime(timezone=True)))
    op.add_column("downloads", sa.Column("placed_path", sa.Text))
    op.add_column("downloads", sa.Column("last_failure_at", sa.DateTime(timezone=True)))
    op.add_column("downloads", sa.Column("last_error", sa.Text))
    if op.get_bind().dialect.name == "postgresql":
        for table, column, length in _WIDENED:
            op.alter_column(table, column, type_=sa.Text, existing_type=sa.String(length))
    _verified_was_placed()


def _verified_was_placed() -> None:
    """Before version 3 a verified file was in place (a file of an item still being built
    was in staging's ``items/`` folder, which the first writing run hands back to the
    engine: see ``staging.adopt_legacy_items``). Without this every mirrored file would
    look unplaced and be fetched again."""
    op.execute(
        "UPDATE downloads SET placed_at = verified_at, placed_path = relative_path "
        "WHERE verified_at IS NOT NULL AND placed_at IS NULL"
    )
