"""Schema 6: which file each placed file was, as the filesystem told (inode, mtime).

The mount reads a placed copy as put.io's file only while the file at its path is still
the one placed (``core/state.FileIdentity``). The columns are nullable, so ``ADD COLUMN``
works on both databases; a file placed before has no identity known (NULL), never one
made up here: the mount checks such a copy's CRC32 once before reading it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("downloads", sa.Column("placed_inode", sa.BigInteger))
    op.add_column("downloads", sa.Column("placed_mtime_ns", sa.BigInteger))
