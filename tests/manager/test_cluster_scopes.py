"""Roles scoped to clusters (manager/scopes.py), on SQLite and PostgreSQL: an operator of cluster `edge` sees, cordons
and distributes to edge's hosts only, sees only the tasks that stayed within edge, and cannot change clusters; an
admin cannot be scoped. The hosts are a real Scheduler's, the jobs go to a real JobBoard no host reads."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from manager.config import ManagerConfig
from manager.host_source import SchedulerSource
from manager.job_channel import BoardChannel
from supernode.scheduler import Scheduler
from tests.manager.conftest import ADMIN_PASSWORD, Running, start
from tests.manager.played_board import PlayedBoard

IMAGE = {"reference": "registry.example.com/team/app:1.4"}
PASSWORD = "scoped-pass-1"


@pytest.fixture
async def scoped(manager_config: ManagerConfig, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Running]:
    monkeypatch.setenv("DAMSELFLY_ADMIN_PASSWORD", ADMIN_PASSWORD)
    scheduler = Scheduler()
    for name, address, zone in (("e1", "10.0.0.1", "edge"), ("e2", "10.0.0.2", "edge"), ("c1", "10.0.1.1", "core")):
        scheduler.register(name, f"http://{address}:65002", {"zone": zone}, time.monotonic())
    async for running in start(replace(manager_config, task_round=0.05), SchedulerSource(scheduler),
                               BoardChannel(PlayedBoard())):
        admin = await running.admin()
        for cluster in ("edge", "core"):
            made = await running.http.post("/api/v1/clusters", json={"name": cluster, "labels": {"zone": cluster}},
                                           headers=admin)
            assert made.status_code == 201, made.text
        yield running


async def _user(running: Running, name: str, role: str, clusters: list[str]) -> dict[str, str]:
    made = await running.http.post("/api/v1/users", json={"name": name, "role": role, "password": PASSWORD,
                                                          "clusters": clusters}, headers=await running.admin())
    assert made.status_code == 201, made.text
    assert made.json()["clusters"] == clusters
    return await running.login(name, PASSWORD)


async def _task(running: Running, headers: dict[str, str], targets: dict[str, Any]) -> Any:
    return await running.http.post("/api/v1/tasks", json={"kind": "image", "image": IMAGE, "targets": targets},
                                   headers=headers)


async def test_a_scoped_operator_reaches_its_clusters_hosts_and_tasks_only(scoped: Running) -> None:
    http, admin = scoped.http, await scoped.admin()
    edge = await _user(scoped, "edgeop", "operator", ["edge"])
    me = (await http.get("/api/v1/me", headers=edge)).json()
    assert me["clusters"] == ["edge"]

    # Hosts: edge's two, and no way to learn of or touch the core one.
    listed = (await http.get("/api/v1/hosts", headers=edge)).json()["items"]
    assert sorted(h["id"] for h in listed) == ["e1", "e2"]
    assert (await http.get("/api/v1/hosts/c1", headers=edge)).status_code == 404
    assert (await http.post("/api/v1/hosts/c1/cordon", headers=edge)).status_code == 404
    assert (await http.post("/api/v1/hosts/e2/cordon", headers=edge)).status_code == 200
    assert (await http.post("/api/v1/hosts/e2/uncordon", headers=edge)).status_code == 200
    assert len((await http.get("/api/v1/hosts", headers=admin)).json()["items"]) == 3

    # Clusters: edge alone is there; none may be changed, or one could widen one's own scope.
    assert [c["name"] for c in (await http.get("/api/v1/clusters", headers=edge)).json()["items"]] == ["edge"]
    assert (await http.get("/api/v1/clusters/core", headers=edge)).status_code == 404
    widened = await http.patch("/api/v1/clusters/edge", json={"labels": {}}, headers=edge)
    assert widened.status_code == 403 and "edge" in widened.json()["message"], widened.text
    assert (await http.post("/api/v1/clusters", json={"name": "mine"}, headers=edge)).status_code == 403
    assert (await http.delete("/api/v1/clusters/core", headers=edge)).status_code == 403

    # Tasks: to its own cluster, yes; to the other, or to a host of it by any name, no.
    made = await _task(scoped, edge, {"clusters": ["edge"]})
    assert made.status_code == 201, made.text
    own = made.json()
    assert sorted(h["host"] for h in own["hosts"]) == ["e1", "e2"]
    refused = await _task(scoped, edge, {"clusters": ["core"]})
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden", refused.text
    assert (await _task(scoped, edge, {"hosts": ["c1"]})).status_code == 400
    assert (await _task(scoped, edge, {"selector": {"zone": "core"}})).status_code == 400
    dry = await http.post("/api/v1/tasks/dry-run", json={"kind": "image", "image": IMAGE,
                                                         "targets": {"hosts": ["e1", "c1"]}, "wait": 0},
                          headers=edge)
    assert dry.status_code == 400, dry.text

    # The admin's tasks: the one within edge is the operator's to see and stop; the one reaching core is not there.
    inside = (await _task(scoped, admin, {"hosts": ["e1"]})).json()
    across = (await _task(scoped, admin, {"hosts": ["e1", "c1"]})).json()
    seen = {t["id"] for t in (await http.get("/api/v1/tasks", headers=edge)).json()["items"]}
    assert seen == {own["id"], inside["id"]}
    assert len((await http.get("/api/v1/tasks", headers=admin)).json()["items"]) == 3
    for path in (f"/api/v1/tasks/{across['id']}", f"/api/v1/tasks/{across['id']}/events",
                 f"/api/v1/analysis/tasks/{across['id']}"):
        assert (await http.get(path, headers=edge)).status_code == 404, path
    assert (await http.post(f"/api/v1/tasks/{across['id']}/stop", headers=edge)).status_code == 404
    assert (await http.get(f"/api/v1/tasks/{across['id']}", headers=admin)).json()["state"] in ("pending", "running")
    stopped = await http.post(f"/api/v1/tasks/{inside['id']}/stop", headers=edge)
    assert stopped.status_code == 200 and stopped.json()["state"] == "stopped", stopped.text
    figures = (await http.get("/api/v1/analysis/tasks", headers=edge)).json()["tasks"]
    assert {f["id"] for f in figures} == {own["id"], inside["id"]}
    # A page of one at a time walks the operator's tasks only, newest first, past the admin's between them.
    first = (await http.get("/api/v1/tasks?limit=1", headers=edge)).json()
    second = (await http.get(f"/api/v1/tasks?limit=1&cursor={first['next']}", headers=edge)).json()
    assert [first["items"][0]["id"], second["items"][0]["id"]] == [inside["id"], own["id"]]
    assert second["next"] is None

    # The traffic series of a cluster beyond the scope is not there; of its own, it is.
    assert (await http.get("/api/v1/analysis/traffic?cluster=core", headers=edge)).status_code == 404
    assert (await http.get("/api/v1/analysis/traffic?host=c1", headers=edge)).status_code == 404
    assert (await http.get("/api/v1/analysis/traffic?cluster=edge", headers=edge)).status_code == 200


async def test_a_scoped_viewer_reads_its_cluster_and_writes_nothing(scoped: Running) -> None:
    viewer = await _user(scoped, "edgeview", "viewer", ["edge"])
    hosts = (await scoped.http.get("/api/v1/hosts", headers=viewer)).json()["items"]
    assert sorted(h["id"] for h in hosts) == ["e1", "e2"]
    refused = await _task(scoped, viewer, {"clusters": ["edge"]})
    assert refused.status_code == 403 and "tasks:write" in refused.json()["message"]


async def test_scopes_are_for_operators_and_viewers_over_clusters_that_exist(scoped: Running) -> None:
    admin = await scoped.admin()
    for body, needle in (({"role": "admin", "clusters": ["edge"]}, "admin"),
                         ({"role": "operator", "clusters": ["nowhere"]}, "nowhere"),
                         ({"role": "operator", "clusters": "edge"}, "list")):
        made = await scoped.http.post("/api/v1/users", json={"name": "x", "password": PASSWORD, **body},
                                      headers=admin)
        assert made.status_code == 400 and needle in made.json()["message"], made.text
    await _user(scoped, "wide", "operator", [])
    # Scoping a user later takes hold at once, on the sessions it has.
    wide = await scoped.login("wide", PASSWORD)
    assert len((await scoped.http.get("/api/v1/hosts", headers=wide)).json()["items"]) == 3
    patched = await scoped.http.patch("/api/v1/users/wide", json={"clusters": ["core"]}, headers=admin)
    assert patched.status_code == 200 and patched.json()["clusters"] == ["core"], patched.text
    assert [h["id"] for h in (await scoped.http.get("/api/v1/hosts", headers=wide)).json()["items"]] == ["c1"]
    promoted = await scoped.http.patch("/api/v1/users/wide", json={"role": "admin"}, headers=admin)
    assert promoted.status_code == 400 and "admin" in promoted.json()["message"]
