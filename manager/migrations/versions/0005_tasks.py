"""Distribution tasks, their hosts (one job each) and transaction log; registry secrets (password encrypted).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "secrets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("username", sa.String(255), nullable=False),
        sa.Column("password_encrypted", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False, server_default=""),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("targets", sa.JSON, nullable=False),
        sa.Column("rate", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("concurrency", sa.Integer, nullable=False, server_default="0"),
        sa.Column("timeout", sa.Float, nullable=False, server_default="0"),
        sa.Column("mode", sa.String(16), nullable=False, server_default="cache"),
        sa.Column("secret_id", sa.Integer, sa.ForeignKey("secrets.id", ondelete="SET NULL"), nullable=True),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
        sa.Column("created_by", sa.String(64), nullable=False, server_default=""),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("lease_owner", sa.String(128), nullable=False, server_default=""),
        sa.Column("lease_expires", sa.Float, nullable=True),
    )
    op.create_table(
        "task_hosts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.Integer, sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("host_id", sa.String(255), nullable=False),
        sa.Column("job_id", sa.String(128), nullable=False, server_default=""),
        sa.Column("attempt", sa.Integer, nullable=False, server_default="1"),
        sa.Column("state", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("job_live", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("bytes_done", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("bytes_total", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("from_upstream", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("from_peers", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("blobs", sa.JSON, nullable=False),
    )
    op.create_table(
        "task_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.Integer, sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("what", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_table("task_events")
    op.drop_table("task_hosts")
    op.drop_table("tasks")
    op.drop_table("secrets")
