"""The platform on a real database: each storage test runs on a SQLite file and on a PostgreSQL server."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from manager.app import ManagerApp
from manager.config import ManagerConfig
from manager.host_source import HostSource
from manager.job_channel import BoardChannel, JobChannel
from tests.manager.played_board import PlayedBoard
from tests.support.postgres import PostgresCluster, PostgresMissing

ADMIN_PASSWORD = "admin-pass-1"
_names = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    try:
        cluster = PostgresCluster()
    except PostgresMissing as exc:
        pytest.skip(str(exc))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def manager_config(request: pytest.FixtureRequest, tmp_path: Path) -> ManagerConfig:
    """A config on an empty database of each kind."""
    if request.param == "sqlite":
        return ManagerConfig(data_dir=tmp_path / "data")
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return ManagerConfig(data_dir=tmp_path / "data", database=cluster.create_database(f"t{next(_names)}"))


@dataclass
class Running:
    app: ManagerApp
    http: httpx.AsyncClient
    config: ManagerConfig

    async def login(self, username: str, password: str) -> dict[str, str]:
        answer = await self.http.post("/api/v1/login", json={"username": username, "password": password})
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['token']}"}

    async def admin(self) -> dict[str, str]:
        return await self.login("admin", ADMIN_PASSWORD)

    async def user(self, name: str, role: str, password: str = "user-pass-1") -> dict[str, str]:
        """A new user of `role`, logged in."""
        made = await self.http.post("/api/v1/users", json={"name": name, "role": role, "password": password},
                                    headers=await self.admin())
        assert made.status_code == 201, made.text
        return await self.login(name, password)


async def start(config: ManagerConfig, hosts: HostSource | None = None,
                jobs: JobChannel | None = None) -> AsyncIterator[Running]:
    app = ManagerApp(config, hosts, jobs)
    assert await app.startup()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://manager") as http:
        yield Running(app, http, config)
    await app.shutdown()


@pytest.fixture
async def platform(manager_config: ManagerConfig, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Running]:
    """With a job channel (over a real job board that no host reads), so that the task endpoints answer."""
    monkeypatch.setenv("DAMSELFLY_ADMIN_PASSWORD", ADMIN_PASSWORD)
    async for running in start(manager_config, jobs=BoardChannel(PlayedBoard())):
        yield running


@pytest.fixture
async def sqlite_platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Running]:
    """For what does not depend on the database (input checks, the route table): SQLite alone."""
    monkeypatch.setenv("DAMSELFLY_ADMIN_PASSWORD", ADMIN_PASSWORD)
    async for running in start(replace(ManagerConfig(), data_dir=tmp_path / "data")):
        yield running


# Debian's chromium: what the console's browser tests drive.
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium, headless, driven by Playwright (its own browser download is not used), for the console's
    browser tests; imported here only when a test asks for it, so the other tests need neither."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; scripts/test.sh does as root)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the test extra's playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield launched
        finally:
            launched.close()
