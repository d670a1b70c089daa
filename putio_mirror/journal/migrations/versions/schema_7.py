"""Schema 7: which local file, of put.io's size, was found to hold other bytes.

A file not ours in the way with put.io's size is read whole to learn that its CRC32
differs: a 50 GB file another tool preallocated and never finished would be read by
every run. Its identity (inode, mtime) is kept once judged, and it is not read again
while it is the same file (``app/downloading.Placer.adopt``). Nullable, so ``ADD
COLUMN`` works on both databases; NULL: no such judgement.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("downloads", sa.Column("stranger_inode", sa.BigInteger))
    op.add_column("downloads", sa.Column("stranger_mtime_ns", sa.BigInteger))
