"""Roles scoped to clusters: the clusters a user's role holds in (none: all), and the clusters each task host was
in when its task was made (what decides who sees the task: manager/scopes.py).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("clusters", sa.JSON, nullable=False, server_default="[]"))
    with op.batch_alter_table("task_hosts") as batch:
        batch.add_column(sa.Column("clusters", sa.JSON, nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("task_hosts") as batch:
        batch.drop_column("clusters")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("clusters")
