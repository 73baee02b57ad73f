"""The hosts' traffic: their counters as last sampled, and the bytes they moved per hour (manager/traffic.py); and
the hash of the cluster join token each host registered with (manager/hosts.py).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None

_BYTES = ("fetched_upstream", "fetched_peers", "served_peers", "served_clients")


def _byte_columns() -> list[sa.Column[int]]:
    return [sa.Column(name, sa.BigInteger, nullable=False, server_default="0") for name in _BYTES]


def upgrade() -> None:
    op.create_table(
        "traffic_counters",
        sa.Column("host_id", sa.String(255), primary_key=True),
        *_byte_columns(),
        sa.Column("sampled_at", sa.Float, nullable=False),
    )
    op.create_table(
        "traffic_hours",
        sa.Column("hour", sa.BigInteger, primary_key=True),
        sa.Column("host_id", sa.String(255), primary_key=True),
        *_byte_columns(),
    )
    # batch: SQLite alters a table by copying it, which Alembic's batch mode does (a plain ALTER elsewhere).
    with op.batch_alter_table("hosts") as batch:
        batch.add_column(sa.Column("cluster_token_hash", sa.String(64), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("hosts") as batch:
        batch.drop_column("cluster_token_hash")
    op.drop_table("traffic_hours")
    op.drop_table("traffic_counters")
