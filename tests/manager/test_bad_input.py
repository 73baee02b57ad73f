"""Bad input is a JSON error with the status that says what is wrong, never a 500 nor a traceback."""

from __future__ import annotations

from typing import Any

import pytest

from tests.manager.conftest import Running

AUTHED = object()


@pytest.mark.parametrize(
    ("method", "path", "content", "status"),
    [
        ("POST", "/api/v1/login", b"{not json", 400),
        ("POST", "/api/v1/login", b"[1, 2]", 400),
        ("POST", "/api/v1/login", b'{"username": 5, "password": "x"}', 400),
        ("POST", "/api/v1/login", b'{"username": "admin"}', 400),
        ("POST", "/api/v1/login", b"\xff\xfe\x00", 400),
        ("POST", "/api/v1/login", b'{"username": "a", "password": "b", "extra": 1}', 400),
        ("POST", "/api/v1/login", b"{" + b'"a":' * 2000, 400),
        ("POST", "/api/v1/login", b"x" * (1 << 20), 413),
        ("POST", "/api/v1/users", b'{"name": "../etc", "role": "viewer", "password": "longenough"}', 400),
        ("POST", "/api/v1/users", b'{"name": "ok", "role": "root", "password": "longenough"}', 400),
        ("POST", "/api/v1/users", b'{"name": "ok", "role": "viewer", "password": "short"}', 400),
        ("POST", "/api/v1/users", b'{"name": ' + b'"a"' * 1 + b', "role": ["viewer"], "password": "p"}', 400),
        ("PATCH", "/api/v1/users/admin", b'{"disabled": "yes"}', 400),
        ("PATCH", "/api/v1/users/nobody", b'{"role": "viewer"}', 404),
        ("PATCH", "/api/v1/users/admin", b'{"role": "viewer"}', 409),
        ("DELETE", "/api/v1/users/admin", b"", 409),
        ("POST", "/api/v1/tokens", b'{"expires": "forever"}', 400),
        ("POST", "/api/v1/tokens", b'{"expires": "999999d"}', 400),
        ("POST", "/api/v1/tokens", b'{"scopes": ["root"]}', 400),
        ("POST", "/api/v1/tokens", b'{"scopes": "users:read"}', 400),
        ("POST", "/api/v1/tokens", b'{"scopes": []}', 400),
        ("DELETE", "/api/v1/tokens/abc", b"", 404),
        ("DELETE", "/api/v1/tokens/99999999999999999999999", b"", 404),
        ("GET", "/api/v1/users?limit=0", b"", 400),
        ("GET", "/api/v1/users?limit=501", b"", 400),
        ("GET", "/api/v1/users?limit=-1", b"", 400),
        ("GET", "/api/v1/users?cursor=%00", b"", 400),
        ("GET", "/api/v1/audit?cursor=99999999999999999999999", b"", 400),
        ("GET", "/api/v1/nothing-here", b"", 404),
        ("DELETE", "/api/v1/me", b"", 405),
        ("PUT", "/api/v1/me/password", b'{"old": 1, "new": 2}', 400),
    ],
)
async def test_bad_input_is_a_json_error(
    sqlite_platform: Running, method: str, path: str, content: bytes, status: int
) -> None:
    headers = await sqlite_platform.admin()
    headers["content-type"] = "application/json"
    answer = await sqlite_platform.http.request(method, path, content=content, headers=headers)
    assert answer.status_code == status, answer.text
    body: Any = answer.json()
    assert set(body) == {"code", "message"}
    assert "Traceback" not in answer.text


@pytest.mark.parametrize(
    "authorization", [b"", b"Bearer", b"Bearer ", b"Basic YWRtaW46YWRtaW4=", b"Bearer dfs_nope", b"Bearer dft_nope",
                      b"Bearer " + b"x" * 5000, "bearer \u00e9".encode()],
)
async def test_bad_credentials_are_401(sqlite_platform: Running, authorization: bytes) -> None:
    headers = {b"Authorization": authorization} if authorization else {}
    answer = await sqlite_platform.http.get("/api/v1/me", headers=headers)
    assert answer.status_code == 401
    assert answer.json()["code"] == "unauthenticated"
    assert answer.headers["www-authenticate"] == "Bearer"


async def test_a_body_of_unknown_length_is_capped_too(sqlite_platform: Running) -> None:
    async def chunks() -> Any:
        for _ in range(100):
            yield b" " * 4096

    answer = await sqlite_platform.http.post("/api/v1/login", content=chunks())
    assert answer.status_code == 413
    assert answer.json()["code"] == "body_too_large"
