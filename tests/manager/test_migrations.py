"""Migrations from an empty database, and a database at 0001 upgraded in place to head with its rows kept."""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa

from manager import migrate
from manager.config import ManagerConfig
from manager.database import create_engine, database_url


async def test_an_empty_database_migrates_to_head(manager_config: ManagerConfig) -> None:
    engine = create_engine(database_url(manager_config.database, manager_config.data_dir))
    try:
        assert await migrate.current_revision(engine) is None
        await migrate.upgrade(engine)
        assert await migrate.current_revision(engine) == "0006"
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda sync: set(sa.inspect(sync).get_table_names()))
        assert {"users", "api_tokens", "sessions", "audit_log", "hosts", "clusters", "traffic_counters",
                "traffic_hours", "tasks", "task_hosts", "task_events", "secrets"} <= tables
        # Running again at head changes nothing and does not fail.
        await migrate.upgrade(engine)
        assert await migrate.current_revision(engine) == "0006"
    finally:
        await engine.dispose()


async def test_a_database_at_0001_upgrades_in_place_keeping_its_rows(manager_config: ManagerConfig) -> None:
    engine = create_engine(database_url(manager_config.database, manager_config.data_dir))
    try:
        await migrate.upgrade(engine, "0001")
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda sync: set(sa.inspect(sync).get_table_names()))
        assert "audit_log" not in tables
        async with engine.begin() as conn:
            await conn.execute(sa.text(
                "INSERT INTO users (name, role, password_hash, created_at, disabled) "
                "VALUES ('old', 'viewer', 'x', :now, false)"
            ), {"now": time.time()})
        await migrate.upgrade(engine)
        assert await migrate.current_revision(engine) == "0006"
        async with engine.connect() as conn:
            names = (await conn.execute(sa.text("SELECT name, role FROM users"))).all()
            audit = (await conn.execute(sa.text("SELECT count(*) FROM audit_log"))).scalar_one()
        assert [tuple(row) for row in names] == [("old", "viewer")]
        assert audit == 0
    finally:
        await engine.dispose()


async def test_hosts_at_0003_keep_their_rows_and_have_joined_no_cluster_at_head(manager_config: ManagerConfig) -> None:
    engine = create_engine(database_url(manager_config.database, manager_config.data_dir))
    try:
        await migrate.upgrade(engine, "0003")
        async with engine.begin() as conn:
            await conn.execute(sa.text(
                "INSERT INTO hosts (host_id, labels, first_seen, last_seen, cordoned) "
                "VALUES ('h1', '{\"zone\": \"a\"}', 1.0, 2.0, true)"
            ))
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT host_id, cordoned, cluster_token_hash FROM hosts"))).all()
        assert [tuple(row) for row in rows] == [("h1", True, "")]
    finally:
        await engine.dispose()


async def test_sqlite_is_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    engine = create_engine(database_url("", tmp_path))
    try:
        async with engine.connect() as conn:
            mode = (await conn.execute(sa.text("PRAGMA journal_mode"))).scalar_one()
            keys = (await conn.execute(sa.text("PRAGMA foreign_keys"))).scalar_one()
        assert (mode, keys) == ("wal", 1)
        assert (tmp_path / "manager.sqlite3").exists()
    finally:
        await engine.dispose()
