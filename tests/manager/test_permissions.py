"""The permission matrix: each role, and tokens of chosen scopes, against each endpoint. The expected answers are
written out here, not derived from manager/permissions.py, so a change to the role table shows up as a failure."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from manager.models import Host
from manager.routes import ROUTES
from tests.manager.conftest import Running

_names = itertools.count()


# Tasks go to the hosts with this label (a host row _fill writes; down: the task waits for it).
_TASK_BODY: dict[str, Any] = {"image": {"reference": "team/app:1"}, "targets": {"selector": {"matrix": "yes"}}}


@dataclass(frozen=True)
class Call:
    method: str
    # Filled with a user the admin made for the call (a target user) and a token id of the caller's.
    path: str
    body: Callable[[str], dict[str, Any] | None] = lambda _: None


CALLS = {
    "me": Call("GET", "/api/v1/me"),
    "change_password": Call("PUT", "/api/v1/me/password", lambda own: {"old": own, "new": "changed-pass-1"}),
    "list_users": Call("GET", "/api/v1/users"),
    "create_user": Call("POST", "/api/v1/users",
                        lambda _: {"name": f"new{next(_names)}", "role": "viewer", "password": "new-pass-12"}),
    "show_user": Call("GET", "/api/v1/users/{target}"),
    "update_user": Call("PATCH", "/api/v1/users/{target}", lambda _: {"role": "operator"}),
    "delete_user": Call("DELETE", "/api/v1/users/{target}"),
    "list_tokens": Call("GET", "/api/v1/tokens"),
    "create_token": Call("POST", "/api/v1/tokens", lambda _: {"scopes": ["tokens:read"], "expires": "1h"}),
    "delete_token": Call("DELETE", "/api/v1/tokens/{token}"),
    "list_audit": Call("GET", "/api/v1/audit"),
    "list_hosts": Call("GET", "/api/v1/hosts"),
    "show_host": Call("GET", "/api/v1/hosts/{host}"),
    "cordon_host": Call("POST", "/api/v1/hosts/{host}/cordon"),
    "uncordon_host": Call("POST", "/api/v1/hosts/{host}/uncordon"),
    "list_clusters": Call("GET", "/api/v1/clusters"),
    "create_cluster": Call("POST", "/api/v1/clusters", lambda _: {"name": f"c{next(_names)}", "labels": {"a": "b"}}),
    "show_cluster": Call("GET", "/api/v1/clusters/{cluster}"),
    "update_cluster": Call("PATCH", "/api/v1/clusters/{cluster}", lambda _: {"description": "d"}),
    "delete_cluster": Call("DELETE", "/api/v1/clusters/{cluster}"),
    "rotate_cluster_token": Call("POST", "/api/v1/clusters/{cluster}/token"),
    "analysis_traffic": Call("GET", "/api/v1/analysis/traffic"),
    "analysis_metrics": Call("GET", "/api/v1/analysis/metrics"),
    "analysis_tasks": Call("GET", "/api/v1/analysis/tasks"),
    "analysis_task": Call("GET", "/api/v1/analysis/tasks/{task}"),
    "list_tasks": Call("GET", "/api/v1/tasks"),
    "create_task": Call("POST", "/api/v1/tasks", lambda _: _TASK_BODY),
    "dry_run_task": Call("POST", "/api/v1/tasks/dry-run", lambda _: {**_TASK_BODY, "wait": 0}),
    "show_task": Call("GET", "/api/v1/tasks/{task}"),
    "delete_task": Call("DELETE", "/api/v1/tasks/{stopped_task}"),
    "stop_task": Call("POST", "/api/v1/tasks/{task}/stop"),
    "retry_task": Call("POST", "/api/v1/tasks/{stopped_task}/retry"),
    "task_events": Call("GET", "/api/v1/tasks/{task}/events"),
    "list_secrets": Call("GET", "/api/v1/secrets"),
    "create_secret": Call("POST", "/api/v1/secrets",
                          lambda _: {"name": f"s{next(_names)}", "username": "u", "password": "registry-pass"}),
    "delete_secret": Call("DELETE", "/api/v1/secrets/{secret}"),
    "logout": Call("POST", "/api/v1/logout"),
}
OPERATORS = {"admin", "operator"}

EVERYONE = {"admin", "operator", "viewer"}
# Which roles each endpoint lets through.
ALLOWED = {
    "me": EVERYONE,
    "change_password": EVERYONE,
    "list_users": {"admin"},
    "create_user": {"admin"},
    "show_user": {"admin"},
    "update_user": {"admin"},
    "delete_user": {"admin"},
    "list_tokens": EVERYONE,
    "create_token": EVERYONE,
    "delete_token": EVERYONE,
    "list_audit": {"admin"},
    "list_hosts": EVERYONE,
    "show_host": EVERYONE,
    "cordon_host": OPERATORS,
    "uncordon_host": OPERATORS,
    "list_clusters": EVERYONE,
    "create_cluster": OPERATORS,
    "show_cluster": EVERYONE,
    "update_cluster": OPERATORS,
    "delete_cluster": OPERATORS,
    "rotate_cluster_token": OPERATORS,
    "analysis_traffic": EVERYONE,
    "analysis_metrics": EVERYONE,
    "analysis_tasks": EVERYONE,
    "analysis_task": EVERYONE,
    "list_tasks": EVERYONE,
    "create_task": OPERATORS,
    "dry_run_task": OPERATORS,
    "show_task": EVERYONE,
    "delete_task": OPERATORS,
    "stop_task": OPERATORS,
    "retry_task": OPERATORS,
    "task_events": EVERYONE,
    "list_secrets": EVERYONE,
    "create_secret": OPERATORS,
    "delete_secret": OPERATORS,
    "logout": EVERYONE,
}
# The permission a refusal names.
NEEDS = {
    "change_password": "account:write", "list_users": "users:read", "create_user": "users:write",
    "show_user": "users:read", "update_user": "users:write", "delete_user": "users:write",
    "list_tokens": "tokens:read", "create_token": "tokens:write", "delete_token": "tokens:write",
    "list_audit": "audit:read",
    "list_hosts": "targets:read", "show_host": "targets:read", "cordon_host": "targets:write",
    "uncordon_host": "targets:write", "list_clusters": "targets:read", "create_cluster": "targets:write",
    "show_cluster": "targets:read", "update_cluster": "targets:write", "delete_cluster": "targets:write",
    "rotate_cluster_token": "targets:write", "analysis_traffic": "analysis:read", "analysis_metrics": "analysis:read",
    "analysis_tasks": "analysis:read", "analysis_task": "analysis:read",
    "list_tasks": "tasks:read", "create_task": "tasks:write", "dry_run_task": "tasks:write",
    "show_task": "tasks:read", "delete_task": "tasks:write", "stop_task": "tasks:write",
    "retry_task": "tasks:write", "task_events": "tasks:read",
    "list_secrets": "secrets:read", "create_secret": "secrets:write", "delete_secret": "secrets:write",
}


def test_the_matrix_covers_every_authenticated_route() -> None:
    assert {r.name for r in ROUTES if r.authenticated} == set(CALLS) == set(ALLOWED)
    assert {r.name: r.permission.value for r in ROUTES if r.permission} == NEEDS


async def _caller(platform: Running, role: str, password: str) -> dict[str, str]:
    if role == "admin":
        made = await platform.http.post("/api/v1/users", json={"name": "admin2", "role": "admin",
                                                               "password": password}, headers=await platform.admin())
        assert made.status_code == 201
        return await platform.login("admin2", password)
    return await platform.user(f"{role}1", role, password)


async def _fill(platform: Running, call: Call, headers: dict[str, str]) -> str:
    path = call.path
    if "{target}" in path:
        target = f"target{next(_names)}"
        made = await platform.http.post("/api/v1/users", json={"name": target, "role": "viewer",
                                                               "password": "target-pass-1"},
                                        headers=await platform.admin())
        assert made.status_code == 201
        path = path.replace("{target}", target)
    if "{token}" in path:
        # The caller's own token, made with the caller's session.
        made = await platform.http.post("/api/v1/tokens", json={"scopes": ["tokens:read"]}, headers=headers)
        token_id = str(made.json()["id"]) if made.status_code == 201 else "1"
        path = path.replace("{token}", token_id)
    if "{host}" in path:
        host_id = f"host{next(_names)}"
        async with platform.app.platform.sessions.begin() as session:  # type: ignore[union-attr]
            session.add(Host(host_id=host_id, labels={}, first_seen=1.0, last_seen=1.0))
        path = path.replace("{host}", host_id)
    if path.startswith(("/api/v1/tasks", "/api/v1/analysis/tasks/")):
        async with platform.app.platform.sessions() as session:  # type: ignore[union-attr]
            seen = (await session.execute(select(Host).where(Host.host_id == "matrix-host"))).scalar()
        if seen is None:
            async with platform.app.platform.sessions.begin() as session:  # type: ignore[union-attr]
                session.add(Host(host_id="matrix-host", labels={"matrix": "yes"}, first_seen=1.0, last_seen=1.0))
    for hole, stop in (("{task}", False), ("{stopped_task}", True)):
        if hole in path:
            admin = await platform.admin()
            made = await platform.http.post("/api/v1/tasks", json=_TASK_BODY, headers=admin)
            assert made.status_code == 201, made.text
            if stop:
                stopped = await platform.http.post(f"/api/v1/tasks/{made.json()['id']}/stop", headers=admin)
                assert stopped.status_code == 200, stopped.text
            path = path.replace(hole, str(made.json()["id"]))
    if "{secret}" in path:
        secret = f"s{next(_names)}"
        made = await platform.http.post("/api/v1/secrets", json={"name": secret, "username": "u", "password": "p"},
                                        headers=await platform.admin())
        assert made.status_code == 201, made.text
        path = path.replace("{secret}", secret)
    if "{cluster}" in path:
        cluster = f"k{next(_names)}"
        made = await platform.http.post("/api/v1/clusters", json={"name": cluster}, headers=await platform.admin())
        assert made.status_code == 201, made.text
        path = path.replace("{cluster}", cluster)
    return path


@pytest.mark.parametrize("role", sorted(EVERYONE))
async def test_each_role_against_each_endpoint(platform: Running, role: str) -> None:
    password = "caller-pass-1"
    results: dict[str, httpx.Response] = {}
    for name, call in CALLS.items():
        # Each call on a fresh session: logout and a password change end sessions.
        headers = await platform.login(f"{role}1" if role != "admin" else "admin2", password) if results else \
            await _caller(platform, role, password)
        path = await _fill(platform, call, headers)
        answer = await platform.http.request(call.method, path, json=call.body(password), headers=headers)
        if name == "change_password" and answer.status_code == 204:
            # Back to the password the next calls log in with.
            again = await platform.login(f"{role}1" if role != "admin" else "admin2", "changed-pass-1")
            reset = await platform.http.put("/api/v1/me/password", json={"old": "changed-pass-1", "new": password},
                                            headers=again)
            assert reset.status_code == 204
        results[name] = answer
    for name, answer in results.items():
        if role in ALLOWED[name]:
            assert answer.status_code < 400, (role, name, answer.status_code, answer.text)
        else:
            assert answer.status_code == 403, (role, name, answer.status_code, answer.text)
            assert answer.json() == {"code": "forbidden", "message": f"missing permission {NEEDS[name]}"}


@pytest.mark.parametrize(
    ("scopes", "allowed"),
    [
        (["users:read"], {"me", "list_users", "show_user"}),
        (["tokens:read"], {"me", "list_tokens"}),
        (["users:read", "users:write"], {"me", "list_users", "show_user", "create_user", "update_user",
                                         "delete_user"}),
        (["audit:read"], {"me", "list_audit"}),
        (["analysis:read"], {"me", "analysis_traffic", "analysis_metrics", "analysis_tasks", "analysis_task"}),
    ],
)
async def test_an_admins_token_holds_only_its_scopes(platform: Running, scopes: list[str], allowed: set[str]) -> None:
    admin = await platform.admin()
    made = await platform.http.post("/api/v1/tokens", json={"scopes": scopes, "name": "scoped"}, headers=admin)
    assert made.status_code == 201, made.text
    headers = {"Authorization": f"Bearer {made.json()['token']}"}
    for name, call in CALLS.items():
        if name in ("logout", "change_password"):
            continue
        path = await _fill(platform, call, admin)
        answer = await platform.http.request(call.method, path, json=call.body(""), headers=headers)
        if name in allowed:
            assert answer.status_code < 400, (scopes, name, answer.text)
        else:
            assert answer.status_code == 403, (scopes, name, answer.text)
            assert answer.json()["message"] == f"missing permission {NEEDS[name]}"


async def test_a_viewer_cannot_create_users_nor_mint_a_token_beyond_its_role(platform: Running) -> None:
    viewer = await platform.user("vera", "viewer")
    refused = await platform.http.post("/api/v1/users", json={"name": "mallory", "role": "admin",
                                                              "password": "mallory-pass"}, headers=viewer)
    assert refused.status_code == 403
    assert refused.json()["message"] == "missing permission users:write"
    beyond = await platform.http.post("/api/v1/tokens", json={"scopes": ["users:write"]}, headers=viewer)
    assert beyond.status_code == 403
    assert beyond.json()["message"] == "missing permission users:write"
    listed = await platform.http.get("/api/v1/users", headers=await platform.admin())
    assert "mallory" not in {u["name"] for u in listed.json()["items"]}


async def test_a_token_loses_what_its_users_role_loses(platform: Running) -> None:
    operator = await platform.user("olga", "operator")
    made = await platform.http.post("/api/v1/tokens", json={"scopes": ["tasks:write", "tokens:read"]},
                                    headers=operator)
    assert made.status_code == 201
    token = {"Authorization": f"Bearer {made.json()['token']}"}
    assert "tasks:write" in (await platform.http.get("/api/v1/me", headers=token)).json()["permissions"]
    await platform.http.patch("/api/v1/users/olga", json={"role": "viewer"}, headers=await platform.admin())
    assert (await platform.http.get("/api/v1/me", headers=token)).json()["permissions"] == ["tokens:read"]


async def test_others_tokens_are_invisible_except_to_an_admin(platform: Running) -> None:
    alice = await platform.user("alice", "operator")
    bob = await platform.user("bob", "operator")
    made = await platform.http.post("/api/v1/tokens", json={"name": "alices"}, headers=alice)
    token_id = made.json()["id"]
    assert (await platform.http.get("/api/v1/tokens", headers=bob)).json()["items"] == []
    assert (await platform.http.delete(f"/api/v1/tokens/{token_id}", headers=bob)).status_code == 404
    everyone = await platform.http.get("/api/v1/tokens", headers=await platform.admin())
    assert [t["name"] for t in everyone.json()["items"]] == ["alices"]
    assert (await platform.http.delete(f"/api/v1/tokens/{token_id}", headers=await platform.admin())).status_code == 204
