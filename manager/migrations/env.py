"""Alembic's environment: migrations run on the connection manager/migrate.py hands over, never from an ini file."""

from __future__ import annotations

from alembic import context

from manager.models import Base

connection = context.config.attributes["connection"]
# Batch mode: SQLite alters a table by copying it, which later migrations may need.
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
