"""Login gives a session token; logout and expiry end it; a password change ends the user's other sessions."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from manager.config import ManagerConfig
from tests.manager.conftest import ADMIN_PASSWORD, Running, start


async def test_login_me_logout(platform: Running) -> None:
    headers = await platform.admin()
    me = await platform.http.get("/api/v1/me", headers=headers)
    assert me.status_code == 200
    assert me.json()["name"] == "admin" and me.json()["role"] == "admin" and me.json()["via"] == "session"
    assert (await platform.http.post("/api/v1/logout", headers=headers)).status_code == 204
    after = await platform.http.get("/api/v1/me", headers=headers)
    assert after.status_code == 401
    assert after.json()["code"] == "unauthenticated"


async def test_wrong_password_and_unknown_user_answer_alike(platform: Running) -> None:
    wrong = await platform.http.post("/api/v1/login", json={"username": "admin", "password": "nope-nope"})
    nobody = await platform.http.post("/api/v1/login", json={"username": "ghost", "password": "nope-nope"})
    assert wrong.status_code == nobody.status_code == 401
    assert wrong.json() == nobody.json()


async def test_a_session_expires(manager_config: ManagerConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAMSELFLY_ADMIN_PASSWORD", ADMIN_PASSWORD)
    async for running in start(replace(manager_config, session_ttl=1.0)):
        headers = await running.admin()
        assert (await running.http.get("/api/v1/me", headers=headers)).status_code == 200
        await asyncio.sleep(1.2)
        expired = await running.http.get("/api/v1/me", headers=headers)
        assert expired.status_code == 401


async def test_changing_the_password_ends_the_other_sessions(platform: Running) -> None:
    first = await platform.user("carol", "viewer", "carol-pass-1")
    second = await platform.login("carol", "carol-pass-1")
    wrong = await platform.http.put("/api/v1/me/password", json={"old": "bad-old-pass", "new": "carol-pass-2"},
                                    headers=first)
    assert wrong.status_code == 403
    changed = await platform.http.put("/api/v1/me/password", json={"old": "carol-pass-1", "new": "carol-pass-2"},
                                      headers=first)
    assert changed.status_code == 204
    assert (await platform.http.get("/api/v1/me", headers=first)).status_code == 200
    assert (await platform.http.get("/api/v1/me", headers=second)).status_code == 401
    await platform.login("carol", "carol-pass-2")


async def test_a_disabled_user_is_logged_out_and_cannot_log_in(platform: Running) -> None:
    carol = await platform.user("carol", "operator", "carol-pass-1")
    disabled = await platform.http.patch("/api/v1/users/carol", json={"disabled": True},
                                         headers=await platform.admin())
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    assert (await platform.http.get("/api/v1/me", headers=carol)).status_code == 401
    again = await platform.http.post("/api/v1/login", json={"username": "carol", "password": "carol-pass-1"})
    assert again.status_code == 401


async def test_an_api_token_cannot_log_out_but_can_be_deleted(platform: Running) -> None:
    admin = await platform.admin()
    made = await platform.http.post("/api/v1/tokens", json={"scopes": ["tokens:read", "tokens:write"]},
                                    headers=admin)
    assert made.status_code == 201
    token = {"Authorization": f"Bearer {made.json()['token']}"}
    assert (await platform.http.get("/api/v1/me", headers=token)).json()["via"] == "token"
    assert (await platform.http.post("/api/v1/logout", headers=token)).status_code == 400
    gone = await platform.http.delete(f"/api/v1/tokens/{made.json()['id']}", headers=token)
    assert gone.status_code == 204
    assert (await platform.http.get("/api/v1/me", headers=token)).status_code == 401
