"""The first start creates `admin`: with $DAMSELFLY_ADMIN_PASSWORD, or with a password generated and printed once to
stderr, never logged; later starts create nothing."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import httpx
import pytest

from manager import bootstrap, migrate
from manager.app import ManagerApp
from manager.config import ManagerConfig
from manager.database import create_engine, database_url, session_factory


async def _login(app: ManagerApp, password: str) -> int:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as http:
        answer = await http.post("/api/v1/login", json={"username": "admin", "password": password})
        return answer.status_code


async def test_the_admin_password_comes_from_the_environment(
    manager_config: ManagerConfig, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DAMSELFLY_ADMIN_PASSWORD", "from-the-env-1")
    app = ManagerApp(manager_config)
    assert await app.startup()
    try:
        assert await _login(app, "from-the-env-1") == 200
        assert await _login(app, "admin") == 401
    finally:
        await app.shutdown()
    # Nothing is printed when the operator chose the password.
    assert "from-the-env-1" not in capsys.readouterr().err


async def test_a_generated_password_is_printed_once_and_never_logged(
    manager_config: ManagerConfig, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("DAMSELFLY_ADMIN_PASSWORD", raising=False)
    caplog.set_level(logging.DEBUG)
    engine = create_engine(database_url(manager_config.database, manager_config.data_dir))
    try:
        await migrate.upgrade(engine)
        first, second = io.StringIO(), io.StringIO()
        assert await bootstrap.ensure_admin(session_factory(engine), {}, first)
        # A second start finds the admin there: no new password, nothing printed.
        assert not await bootstrap.ensure_admin(session_factory(engine), {}, second)
    finally:
        await engine.dispose()
    assert second.getvalue() == ""
    match = re.search(r"with password (\S+)", first.getvalue())
    assert match, first.getvalue()
    password = match.group(1)
    assert len(password) >= 16
    assert password not in caplog.text
    app = ManagerApp(manager_config)
    assert await app.startup()
    try:
        assert await _login(app, password) == 200
    finally:
        await app.shutdown()


async def test_a_weak_admin_password_leaves_the_platform_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DAMSELFLY_ADMIN_PASSWORD", "short")
    app = ManagerApp(ManagerConfig(data_dir=tmp_path))
    assert not await app.startup()
    assert "at least 8 characters" in caplog.text
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as http:
        answer = await http.get("/api/v1/me")
    assert answer.status_code == 503
    assert answer.json()["code"] == "unavailable"
