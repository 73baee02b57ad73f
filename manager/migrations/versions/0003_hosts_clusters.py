"""Hosts as the platform saw them, with their cordon; clusters with their scopes and join token's hash.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hosts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("host_id", sa.String(255), nullable=False, unique=True),
        sa.Column("hostname", sa.String(255), nullable=False, server_default=""),
        sa.Column("url", sa.String(512), nullable=False, server_default=""),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("version", sa.String(255), nullable=False, server_default=""),
        sa.Column("disk_used", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("disk_total", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("disk_quota", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("upload_rate", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("download_rate", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("swarms", sa.Integer, nullable=False, server_default="0"),
        sa.Column("first_seen", sa.Float, nullable=False),
        sa.Column("last_seen", sa.Float, nullable=False),
        sa.Column("cordoned", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("cordoned_by", sa.String(64), nullable=False, server_default=""),
        sa.Column("cordoned_at", sa.Float, nullable=True),
    )
    op.create_table(
        "clusters",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("cidrs", sa.JSON, nullable=False),
        sa.Column("hostnames", sa.JSON, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("clusters")
    op.drop_table("hosts")
