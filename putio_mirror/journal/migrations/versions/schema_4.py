"""Schema 4: desires, what RPC clients (Sonarr, Radarr, transmission-remote) asked for."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "desires",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("info_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("torrent", sa.LargeBinary),
        sa.Column("magnet_uri", sa.Text, nullable=False),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("labels", sa.Text, nullable=False),
        sa.Column("paused", sa.Boolean, nullable=False),
        sa.Column("seed_ratio_limit", sa.Float),
        sa.Column("seed_idle_minutes", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("item_id", sa.BigInteger),
        sa.Column("item_path", sa.Text),
        sa.Column("item_files", sa.Text),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True)),
        sa.Column("purge", sa.Boolean, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
    )
