"""Failed logins are limited per username and per client address: over the limit a login waits (429 with
Retry-After), even with the right password."""

from __future__ import annotations

from dataclasses import replace

import pytest

from manager.config import ManagerConfig
from manager.ratelimit import FailureWindow, LoginLimiter
from tests.manager.conftest import ADMIN_PASSWORD, Running, start


def test_the_window_slides() -> None:
    window = FailureWindow(limit=3, window=10.0)
    for at in (0.0, 1.0, 2.0):
        assert window.retry_after("k", at) == 0
        window.fail("k", at)
    assert window.retry_after("k", 2.5) == 8
    # The first failure leaves the window at 10.0: one more try.
    assert window.retry_after("k", 10.0) == 0
    window.clear("k")
    assert window.retry_after("k", 10.0) == 0


def test_names_are_counted_alike_whatever_their_case() -> None:
    limiter = LoginLimiter(per_user=2, per_address=100, window=60.0)
    limiter.failed("Admin", "10.0.0.1", 0.0)
    limiter.failed("admin", "10.0.0.2", 0.0)
    assert limiter.retry_after("ADMIN", "10.0.0.3", 1.0) == 59


async def test_failed_logins_are_rate_limited(platform: Running) -> None:
    wrong = {"username": "admin", "password": "wrong-password"}
    for _ in range(platform.config.login_failures_per_user):
        assert (await platform.http.post("/api/v1/login", json=wrong)).status_code == 401
    limited = await platform.http.post("/api/v1/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"
    assert 1 <= int(limited.headers["retry-after"]) <= platform.config.login_window


async def test_one_address_trying_many_names_is_limited(
    manager_config: ManagerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAMSELFLY_ADMIN_PASSWORD", ADMIN_PASSWORD)
    async for running in start(replace(manager_config, login_failures_per_address=4)):
        for n in range(4):
            answer = await running.http.post("/api/v1/login", json={"username": f"u{n}", "password": "x-x-x-x-x"})
            assert answer.status_code == 401
        # Another name, the right password: the address has used up its tries.
        limited = await running.http.post("/api/v1/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert limited.status_code == 429
        assert "retry-after" in limited.headers
