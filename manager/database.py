"""The engine and session factory: SQLite in the data directory by default, PostgreSQL by URL."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

SQLITE_FILE = "manager.sqlite3"


class DatabaseUrlError(ValueError):
    """`--database` is neither a PostgreSQL URL nor a file path."""


def database_url(database: str, data_dir: Path) -> URL:
    """The SQLAlchemy URL with an async driver: asyncpg for postgresql://, aiosqlite for a file (the default)."""
    if not database:
        return URL.create("sqlite+aiosqlite", database=str(data_dir / SQLITE_FILE))
    if "://" not in database:
        return URL.create("sqlite+aiosqlite", database=database)
    try:
        url = make_url(database)
    except ArgumentError:
        raise DatabaseUrlError("--database: not a URL (postgresql://USER@HOST:PORT/DB or sqlite:///PATH)") from None
    backend = url.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+asyncpg")
    if backend == "sqlite":
        return url.set(drivername="sqlite+aiosqlite")
    raise DatabaseUrlError(f"--database: {backend!r} is not supported (postgresql or sqlite)")


def shown(url: URL) -> str:
    """The URL as logs and errors may show it: never its password."""
    return url.render_as_string(hide_password=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL: readers do not block the writer; foreign keys are off in SQLite unless asked for, per connection.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def create_engine(url: URL) -> AsyncEngine:
    # aiosqlite logs each statement with its parameters at DEBUG: password hashes and token hashes among them.
    # `--log-level debug` must not put them in the log (tests/manager/test_secrets.py).
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, logging.getLogger("aiosqlite").getEffectiveLevel()))
    # hide_parameters: nor do SQLAlchemy's own log lines and errors show a statement's values.
    if url.get_backend_name() == "sqlite":
        if url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, hide_parameters=True)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # Every network call has a timeout: asyncpg's connect, and each statement.
    return create_async_engine(
        url, pool_pre_ping=True, hide_parameters=True, connect_args={"timeout": 10, "command_timeout": 30}
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
