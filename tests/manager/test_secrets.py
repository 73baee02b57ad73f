"""No answer but the one that issues it, and no log line, holds a password, a token or a stored hash."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from manager.tokens import token_hash
from tests.manager.conftest import ADMIN_PASSWORD, Running


async def test_no_secret_in_any_answer_or_log_line(platform: Running, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    http = platform.http
    login = await http.post("/api/v1/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    session = login.json()["token"]
    admin = {"Authorization": f"Bearer {session}"}
    secrets = {ADMIN_PASSWORD, session, token_hash(session), "frank-pass-1", "frank-pass-2"}
    made = await http.post("/api/v1/tokens", json={"name": "ci"}, headers=admin)
    token = made.json()["token"]
    secrets |= {token, token_hash(token)}
    answers = [
        await http.post("/api/v1/users", json={"name": "frank", "role": "operator", "password": "frank-pass-1"},
                        headers=admin),
        await http.patch("/api/v1/users/frank", json={"password": "frank-pass-2"}, headers=admin),
        await http.get("/api/v1/users", headers=admin),
        await http.get("/api/v1/users/frank", headers=admin),
        await http.get("/api/v1/tokens", headers=admin),
        await http.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}),
        await http.get("/api/v1/audit", headers=admin),
        await http.post("/api/v1/login", json={"username": "frank", "password": "frank-pass-1"}),
        await http.post("/api/v1/login", json={"username": "frank", "password": "frank-pass-2", "x": 1}),
        await http.put("/api/v1/me/password", json={"old": "frank-pass-1", "new": "short"}, headers=admin),
        await http.get("/api/v1/me", headers={"Authorization": f"Bearer {token}x"}),
    ]
    async with platform.app.platform.sessions() as db:  # type: ignore[union-attr]
        stored = (await db.execute(sa.text("SELECT password_hash FROM users"))).scalars().all()
    secrets |= set(stored)
    for hashed in stored:
        # The argon2 string's salt and digest parts, not only the whole.
        secrets |= {part for part in hashed.split("$") if len(part) >= 16}
    for answer in answers:
        seen = answer.text + " ".join(f"{k}: {v}" for k, v in answer.headers.items())
        for secret in secrets:
            assert secret not in seen, (answer.request.url, answer.text)
    for secret in secrets:
        assert secret not in caplog.text
