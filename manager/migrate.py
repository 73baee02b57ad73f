"""Alembic migrations, run in code at start-up: the Config is built here and the scripts ship in the package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

SCRIPTS = Path(__file__).parent / "migrations"
HEAD = "head"
# The key of the PostgreSQL advisory lock that managers starting at once on one database take in turn, so that one
# migrates and the others find the schema done ("dmsf" in ASCII: any constant no other user of the database takes).
MIGRATION_LOCK = 0x646D7366


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection, revision: str) -> None:
    command.upgrade(alembic_config(connection), revision)


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(engine: AsyncEngine, revision: str = HEAD) -> None:
    """Bring the schema to `revision`; a database of an older version upgrades in place, its rows kept."""
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Held to the end of this transaction, the migration's: a second manager waits here, then reads the
            # version the first one committed, and has nothing left to do.
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        await connection.run_sync(_upgrade, revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(_current)
