"""Whatever JSON a client sends to a write endpoint, the answer is the API's JSON error or a success, never a 500."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from manager.app import ManagerApp
from manager.config import ManagerConfig
from tests.manager.conftest import ADMIN_PASSWORD

FIELDS = ["name", "role", "password", "username", "scopes", "expires", "old", "new", "disabled"]
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
    | st.sampled_from(["viewer", "admin", "30d", "users:read", "a" * 2000]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
BODIES = st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=4) | VALUES
ENDPOINTS = st.sampled_from([
    ("POST", "/api/v1/login"), ("POST", "/api/v1/users"), ("PATCH", "/api/v1/users/target"),
    ("POST", "/api/v1/tokens"), ("PUT", "/api/v1/me/password"),
])


def test_no_body_makes_a_500(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAMSELFLY_ADMIN_PASSWORD", ADMIN_PASSWORD)
    with tempfile.TemporaryDirectory() as data:
        asyncio.run(_fuzz(Path(data)))


async def _fuzz(data: Path) -> None:
    # Failed logins would soon be rate limited: the limits are out of the way here.
    app = ManagerApp(ManagerConfig(data_dir=data, login_failures_per_user=10**6, login_failures_per_address=10**6))
    assert await app.startup()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as http:
            login = await http.post("/api/v1/login", json={"username": "admin", "password": ADMIN_PASSWORD})
            headers = {"Authorization": f"Bearer {login.json()['token']}", "content-type": "application/json"}
            # Another user to change: a new password for the admin would end the session the examples use.
            made = await http.post("/api/v1/users", json={"name": "target", "role": "viewer",
                                                          "password": "target-pass"}, headers=headers)
            assert made.status_code == 201
            seen: list[tuple[Any, int]] = []

            @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
            @given(endpoint=ENDPOINTS, body=BODIES)
            def check(endpoint: tuple[str, str], body: Any) -> None:
                method, path = endpoint
                answer = asyncio.run_coroutine_threadsafe(
                    http.request(method, path, content=json.dumps(body).encode(), headers=headers), loop
                ).result(timeout=30)
                assert answer.status_code < 500, (endpoint, body, answer.text)
                # The session stays good: a 401 would hide every later example behind the authentication.
                assert answer.status_code != 401 or path == "/api/v1/login", (endpoint, body, answer.text)
                if answer.status_code >= 400:
                    assert set(answer.json()) == {"code", "message"}
                seen.append((body, answer.status_code))

            loop = asyncio.get_running_loop()
            await asyncio.to_thread(check)
            assert len(seen) >= 80
    finally:
        await app.shutdown()
