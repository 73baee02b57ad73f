"""Every write is in the audit log, in the write's own transaction: allowed ones, refused ones (no permission, no
login), and failed ones (a conflict, bad input)."""

from __future__ import annotations

from typing import Any

from tests.manager.conftest import Running


async def _audit(platform: Running) -> list[dict[str, Any]]:
    answer = await platform.http.get("/api/v1/audit", params={"limit": "500"}, headers=await platform.admin())
    assert answer.status_code == 200
    return list(answer.json()["items"])


def _entries(log: list[dict[str, Any]], action: str) -> list[tuple[str, str, str]]:
    return [(e["actor"], e["target"], e["result"]) for e in reversed(log) if e["action"] == action]


async def test_allowed_refused_and_failed_writes_are_audited(platform: Running) -> None:
    admin = await platform.admin()
    body = {"name": "dave", "role": "viewer", "password": "dave-pass-1"}
    assert (await platform.http.post("/api/v1/users", json=body, headers=admin)).status_code == 201
    assert (await platform.http.post("/api/v1/users", json=body, headers=admin)).status_code == 409
    dave = await platform.login("dave", "dave-pass-1")
    refused = {"name": "eve", "role": "admin", "password": "eve-pass-12"}
    assert (await platform.http.post("/api/v1/users", json=refused, headers=dave)).status_code == 403
    assert (await platform.http.post("/api/v1/users", json=refused)).status_code == 401
    assert (await platform.http.delete("/api/v1/users/dave", headers=dave)).status_code == 403
    assert (await platform.http.delete("/api/v1/users/dave", headers=admin)).status_code == 204
    log = await _audit(platform)
    assert _entries(log, "create_user") == [
        ("", "admin", "ok"),  # the first start
        ("admin", "dave", "ok"),
        ("admin", "dave", "failed"),
        ("dave", "eve", "refused"),
        ("", "eve", "refused"),
    ]
    assert _entries(log, "delete_user") == [("dave", "dave", "refused"), ("admin", "dave", "ok")]
    refusal = next(e for e in log if e["result"] == "refused" and e["actor"] == "dave")
    assert refusal["detail"] == "missing permission users:write"
    assert refusal["via"].startswith("session:")
    assert refusal["client"] == "127.0.0.1"


async def test_logins_are_audited_and_reads_are_not(platform: Running) -> None:
    await platform.http.post("/api/v1/login", json={"username": "admin", "password": "not-the-password"})
    admin = await platform.admin()
    await platform.http.get("/api/v1/users", headers=admin)
    log = await _audit(platform)
    assert ("", "admin", "failed") in _entries(log, "login") or ("", "admin", "refused") in _entries(log, "login")
    assert ("admin", "admin", "ok") in _entries(log, "login")
    assert not [e for e in log if e["action"] in ("list_users", "me", "list_audit")]


async def test_the_audit_log_pages(platform: Running) -> None:
    admin = await platform.admin()
    for n in range(5):
        await platform.http.post("/api/v1/tokens", json={"name": f"t{n}"}, headers=admin)
    seen: list[int] = []
    params = {"limit": "2"}
    while True:
        page = (await platform.http.get("/api/v1/audit", params=params, headers=admin)).json()
        assert len(page["items"]) <= 2
        seen += [e["id"] for e in page["items"]]
        if not page["next"]:
            break
        params["cursor"] = page["next"]
    assert seen == sorted(seen, reverse=True)
    assert len(seen) == len(set(seen)) >= 7
