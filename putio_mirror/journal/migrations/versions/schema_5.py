"""Schema 5: the download order of what RPC clients asked for (``queue-move-*``).

The column is nullable, so ``ADD COLUMN`` works on both databases; the desires already
there keep the order they had, the order they were added in.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("desires", sa.Column("queue_position", sa.Integer))
    op.execute("UPDATE desires SET queue_position = id")
