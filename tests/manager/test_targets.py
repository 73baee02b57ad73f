"""Hosts and clusters through the API, on SQLite and PostgreSQL: hosts shown live from their source and kept in the
database once gone (as down), bounded writes, the cordon told to the scheduler, clusters' scopes and join tokens.

The source here is the in-process one the supernode's hosting passes in (manager/host_source.py SchedulerSource)
over a real Scheduler, whose peers register and heartbeat as the supernode's handlers make them; the standalone one
reads a real supernode app's API.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from manager.app import ManagerApp
from manager.clusters import joined
from manager.config import ManagerConfig
from manager.host_source import SchedulerSource, SupernodeApiSource
from manager.tokens import token_hash
from supernode.api import HostFacts
from supernode.config import SupernodeConfig
from supernode.scheduler import Scheduler
from supernode.server import create_app as create_supernode_app
from tests.manager.conftest import ADMIN_PASSWORD, Running
from tests.support.identities import OPERATOR_TOKEN, operator_headers, register_body, registered

FACTS = HostFacts(hostname="node-a", version="0.1.0", disk_used=1000, disk_total=50_000, disk_quota=20_000,
                  upload_rate=300, download_rate=400, swarms=2)


@pytest.fixture
async def hosted(manager_config: ManagerConfig, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Running,
                                                                                                       Scheduler]]:
    monkeypatch.setenv("DAMSELFLY_ADMIN_PASSWORD", ADMIN_PASSWORD)
    scheduler = Scheduler()
    # Each host's row is written once, then not again within the test unless what identifies it changes.
    config = replace(manager_config, host_write_every=3600.0)
    app = ManagerApp(config, SchedulerSource(scheduler))
    assert await app.startup()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://manager") as http:
        yield Running(app, http, config), scheduler
    await app.shutdown()


def _register(scheduler: Scheduler, name: str, address: str, labels: dict[str, str], facts: HostFacts | None,
              ago: float = 0.0) -> None:
    scheduler.register(name, f"http://{address}:65002", labels, time.monotonic() - ago, host=facts)


async def _hosts(platform: Running, headers: dict[str, str], **query: Any) -> list[dict[str, Any]]:
    answer = await platform.http.get("/api/v1/hosts", params=query, headers=headers)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def _stored(platform: Running, host_id: str, column: str) -> Any:
    assert platform.app.engine is not None
    async with platform.app.engine.connect() as conn:
        return (await conn.execute(sa.text(f"SELECT {column} FROM hosts WHERE host_id = :h"), {"h": host_id})).scalar()


async def test_hosts_are_live_with_their_facts_and_stay_listed_as_down_once_gone(
    hosted: tuple[Running, Scheduler],
) -> None:
    platform, scheduler = hosted
    viewer = await platform.user("vic", "viewer")
    _register(scheduler, "a", "10.1.0.5", {"zone": "z1"}, FACTS)
    _register(scheduler, "b", "10.2.0.6", {"zone": "z2"}, None, ago=scheduler.config.heartbeat_interval * 3)
    hosts = {h["id"]: h for h in await _hosts(platform, viewer)}
    assert hosts["a"]["state"] == "healthy" and hosts["b"]["state"] == "stale"
    a = hosts["a"]
    assert (a["hostname"], a["version"], a["labels"], a["address"]) == ("node-a", "0.1.0", {"zone": "z1"},
                                                                        "http://10.1.0.5:65002")
    assert a["disk"] == {"used": 1000, "total": 50_000, "quota": 20_000}
    assert (a["upload_rate"], a["download_rate"], a["swarms"], a["cordoned"]) == (300, 400, 2, False)
    assert [h["id"] for h in await _hosts(platform, viewer, state="stale")] == ["b"]
    assert [h["id"] for h in await _hosts(platform, viewer, label="zone=z1")] == ["a"]
    # Pages of one.
    first = (await platform.http.get("/api/v1/hosts", params={"limit": 1}, headers=viewer)).json()
    second = (await platform.http.get("/api/v1/hosts", params={"limit": 1, "cursor": first["next"]},
                                      headers=viewer)).json()
    assert [h["id"] for h in first["items"] + second["items"]] == ["a", "b"] and second["next"] is None
    # Gone from the supernode (expired, or left): down, with when it was last seen.
    last_seen = a["last_seen"]
    scheduler.remove_peer("a")
    shown = (await platform.http.get("/api/v1/hosts/a", headers=viewer)).json()
    assert (shown["state"], shown["last_seen"], shown["hostname"]) == ("down", last_seen, "node-a")
    missing = await platform.http.get("/api/v1/hosts/nobody", headers=viewer)
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


async def test_a_hosts_row_is_written_when_new_or_changed_not_at_every_read(hosted: tuple[Running, Scheduler]) -> None:
    platform, scheduler = hosted
    admin = await platform.admin()
    _register(scheduler, "a", "10.1.0.5", {}, FACTS)
    await _hosts(platform, admin)
    assert await _stored(platform, "a", "disk_used") == 1000
    scheduler.heartbeat("a", time.monotonic(), replace(FACTS, disk_used=2000))
    # Shown live, not written: the row is written again only after `host_write_every`.
    assert (await _hosts(platform, admin))[0]["disk"]["used"] == 2000
    assert await _stored(platform, "a", "disk_used") == 1000
    # What identifies the host changed (its labels): written at once.
    scheduler.peers["a"].labels = {"rack": "r9"}
    await _hosts(platform, admin)
    assert await _stored(platform, "a", "disk_used") == 2000


async def test_bad_queries_are_400(hosted: tuple[Running, Scheduler]) -> None:
    platform, _ = hosted
    admin = await platform.admin()
    for query in ({"state": "asleep"}, {"label": "novalue"}, {"limit": "0"}, {"cursor": "x"}):
        answer = await platform.http.get("/api/v1/hosts", params=query, headers=admin)
        assert answer.status_code == 400 and answer.json()["code"] == "invalid", query
    unknown = await platform.http.get("/api/v1/hosts", params={"cluster": "nope"}, headers=admin)
    assert unknown.status_code == 404


async def test_a_cordon_is_stored_told_to_the_scheduler_and_audited(hosted: tuple[Running, Scheduler]) -> None:
    platform, scheduler = hosted
    operator = await platform.user("otto", "operator")
    _register(scheduler, "a", "10.1.0.5", {}, FACTS)
    _register(scheduler, "b", "10.1.0.6", {}, FACTS)
    answer = await platform.http.post("/api/v1/hosts/a/cordon", headers=operator)
    assert answer.status_code == 200, answer.text
    assert answer.json()["cordoned"] and answer.json()["cordon"]["by"] == "otto" and answer.json()["scheduler_told"]
    assert scheduler.cordoned == {"a"}
    assert await _stored(platform, "a", "cordoned") in (True, 1)
    # A scheduler that restarted (or a manager that did) hears the stored cordons at the platform's start.
    fresh = Scheduler()
    again = ManagerApp(platform.config, SchedulerSource(fresh))
    assert await again.startup()
    await again.shutdown()
    assert fresh.cordoned == {"a"}
    assert (await platform.http.post("/api/v1/hosts/a/uncordon", headers=operator)).status_code == 200
    assert scheduler.cordoned == frozenset()
    gone = await platform.http.post("/api/v1/hosts/nobody/cordon", headers=operator)
    assert gone.status_code == 404
    audit = (await platform.http.get("/api/v1/audit", headers=await platform.admin())).json()["items"]
    assert [(e["action"], e["target"], e["result"]) for e in audit if "cordon" in e["action"]] == [
        ("cordon_host", "nobody", "failed"), ("uncordon_host", "a", "ok"), ("cordon_host", "a", "ok")]


async def test_clusters_place_hosts_by_labels_cidrs_and_hostnames(hosted: tuple[Running, Scheduler]) -> None:
    platform, scheduler = hosted
    operator = await platform.user("olga", "operator")
    _register(scheduler, "a", "10.1.0.5", {"zone": "z1", "rack": "r1"}, replace(FACTS, hostname="web-1"))
    _register(scheduler, "b", "10.2.0.6", {"zone": "z1"}, replace(FACTS, hostname="db-1"))
    _register(scheduler, "c", "192.168.7.7", {}, replace(FACTS, hostname="WEB-2"))
    for body in ({"name": "rack1", "labels": {"zone": "z1", "rack": "r1"}},
                 {"name": "net2", "cidrs": ["10.2.0.0/16"], "description": "second network"},
                 {"name": "web", "hostnames": ["web-*"]},
                 {"name": "mixed", "labels": {"zone": "nowhere"}, "cidrs": ["192.168.0.0/16"], "hostnames": ["db-1"]}):
        made = await platform.http.post("/api/v1/clusters", json=body, headers=operator)
        assert made.status_code == 201, made.text
    placed = {name: [h["id"] for h in await _hosts(platform, operator, cluster=name)]
              for name in ("rack1", "net2", "web", "mixed")}
    assert placed == {"rack1": ["a"], "net2": ["b"], "web": ["a", "c"], "mixed": ["b", "c"]}
    assert {h["id"]: h["clusters"] for h in await _hosts(platform, operator)}["a"] == ["rack1", "web"]
    # A scope changed: the hosts move with it.
    changed = await platform.http.patch("/api/v1/clusters/net2", json={"cidrs": ["10.0.0.0/8"]}, headers=operator)
    assert changed.status_code == 200 and changed.json()["cidrs"] == ["10.0.0.0/8"]
    assert [h["id"] for h in await _hosts(platform, operator, cluster="net2")] == ["a", "b"]
    assert changed.json()["description"] == "second network"
    assert (await platform.http.delete("/api/v1/clusters/net2", headers=operator)).status_code == 204
    assert (await platform.http.get("/api/v1/clusters/net2", headers=operator)).status_code == 404
    names = [c["name"] for c in (await platform.http.get("/api/v1/clusters", headers=operator)).json()["items"]]
    assert names == ["rack1", "web", "mixed"]


async def test_a_clusters_join_token_is_shown_once_and_stored_as_its_hash(hosted: tuple[Running, Scheduler]) -> None:
    platform, _ = hosted
    admin = await platform.admin()
    made = await platform.http.post("/api/v1/clusters", json={"name": "edge"}, headers=admin)
    token = made.json()["token"]
    assert token.startswith("dfc_") and len(token) > 40
    shown = [await platform.http.get("/api/v1/clusters/edge", headers=admin),
             await platform.http.get("/api/v1/clusters", headers=admin)]
    assert all(token not in answer.text and "token" not in answer.json() for answer in shown)
    assert platform.app.engine is not None
    async with platform.app.engine.connect() as conn:
        stored = (await conn.execute(sa.text("SELECT token_hash FROM clusters WHERE name = 'edge'"))).scalar()
    assert stored == token_hash(token)
    rotated = await platform.http.post("/api/v1/clusters/edge/token", headers=admin)
    assert rotated.status_code == 200 and rotated.json()["token"] != token
    async with platform.app.engine.connect() as conn:
        stored = (await conn.execute(sa.text("SELECT token_hash FROM clusters WHERE name = 'edge'"))).scalar()
    assert stored == token_hash(rotated.json()["token"])
    audit = (await platform.http.get("/api/v1/audit", headers=admin)).text
    assert token not in audit and rotated.json()["token"] not in audit


@pytest.mark.parametrize(
    "body",
    [{"name": "Bad Name"}, {"name": ""}, {"name": "x", "cidrs": ["10.0.0.0/33"]}, {"name": "x", "cidrs": "10/8"},
     {"name": "x", "labels": ["a=b"]}, {"name": "x", "labels": {"a": 1}}, {"name": "x", "labels": {"": "v"}},
     {"name": "x", "hostnames": ["bad host"]}, {"name": "x", "token": "mine"}, {"name": "x", "description": 5}],
)
async def test_bad_clusters_are_400(sqlite_platform: Running, body: dict[str, Any]) -> None:
    answer = await sqlite_platform.http.post("/api/v1/clusters", json=body, headers=await sqlite_platform.admin())
    assert answer.status_code == 400 and answer.json()["code"] == "invalid", answer.text


async def test_a_cluster_name_is_taken_once(sqlite_platform: Running) -> None:
    admin = await sqlite_platform.admin()
    assert (await sqlite_platform.http.post("/api/v1/clusters", json={"name": "a"}, headers=admin)).status_code == 201
    again = await sqlite_platform.http.post("/api/v1/clusters", json={"name": "a"}, headers=admin)
    assert again.status_code == 409 and again.json()["code"] == "conflict"


async def test_a_manager_alone_reads_the_supernodes_api(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The standalone source against a real supernode app: hosts with their facts, read with the operators'
    token; a supernode that does not answer leaves its hosts as last stored (down), not an error."""
    monkeypatch.setenv("DAMSELFLY_ADMIN_PASSWORD", ADMIN_PASSWORD)
    scheduler = Scheduler(SupernodeConfig(operator_token=OPERATOR_TOKEN).scheduler_config())
    supernode = create_supernode_app(SupernodeConfig(operator_token=OPERATOR_TOKEN), scheduler)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=supernode), base_url="http://sn") as peer:
        answer = await peer.post("/api/v1/peers", json={**register_body("alone"), "host": FACTS.to_json()})
        assert answer.status_code == 200, answer.text
        # Without the operators' token the listing is refused: the source must send it.
        assert (await peer.get("/api/v1/peers")).status_code == 403
        assert (await peer.get("/api/v1/peers", headers=operator_headers())).status_code == 200
        member = registered("alone", answer.json())
        joined = await peer.post(f"/api/v1/swarms/sha256:{'a' * 64}/join", headers=member.headers,
                                 json={"peer_id": member.peer_id, "size": 1000})
        assert joined.status_code == 200, joined.text
    config = ManagerConfig(data_dir=tmp_path, supernodes="http://sn")
    source = SupernodeApiSource(["http://sn"], OPERATOR_TOKEN, transport=httpx.ASGITransport(app=supernode))
    # The swarms it tracks, read from its operators' API (the console's overview shows the count).
    assert await source.swarms_tracked() == 1
    app = ManagerApp(config, source)
    assert await app.startup()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as http:
            running = Running(app, http, config)
            admin = await running.admin()
            (host,) = await _hosts(running, admin)
            assert (host["state"], host["hostname"], host["disk"]["used"]) == ("healthy", "node-a", 1000)
            # Cordoned in the database, and the supernode told through its operators' API (PUT /api/v1/cordoned).
            cordon = await http.post(f"/api/v1/hosts/{host['id']}/cordon", headers=admin)
            assert cordon.status_code == 200 and cordon.json()["scheduler_told"] is True
            assert scheduler.cordoned == {host["id"]}
            uncordon = await http.post(f"/api/v1/hosts/{host['id']}/uncordon", headers=admin)
            assert uncordon.status_code == 200 and uncordon.json()["scheduler_told"] is True
            assert scheduler.cordoned == frozenset()
        # Without the operators' token the supernode refuses to be told.
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=supernode), base_url="http://sn") as other:
            refused = await other.put("/api/v1/cordoned", json={"peers": [host["id"]]})
            assert refused.status_code in (401, 403) and scheduler.cordoned == frozenset()
            bad = await other.put("/api/v1/cordoned", json={"peers": "all"}, headers=operator_headers())
            assert bad.status_code == 400
    finally:
        await app.shutdown()
    unreachable = SupernodeApiSource(["http://127.0.0.1:9"], OPERATOR_TOKEN, timeout=1.0)
    try:
        seen = await unreachable.snapshot()
        assert await unreachable.swarms_tracked() is None
    finally:
        await unreachable.close()
    assert seen.hosts == {} and seen.unreachable == ("http://127.0.0.1:9",)


async def test_a_manager_alone_places_a_host_that_joined_with_a_clusters_token(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token's hash travels in the supernode's operators' listing: a manager alone places the host by it, and
    un-places it when the token is rotated."""
    monkeypatch.setenv("DAMSELFLY_ADMIN_PASSWORD", ADMIN_PASSWORD)
    scheduler = Scheduler(SupernodeConfig(operator_token=OPERATOR_TOKEN).scheduler_config())
    supernode = create_supernode_app(SupernodeConfig(operator_token=OPERATOR_TOKEN), scheduler)
    config = ManagerConfig(data_dir=tmp_path, supernodes="http://sn")
    source = SupernodeApiSource(["http://sn"], OPERATOR_TOKEN, transport=httpx.ASGITransport(app=supernode))
    app = ManagerApp(config, source)
    assert await app.startup()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as http:
            running = Running(app, http, config)
            admin = await running.admin()
            made = await http.post("/api/v1/clusters", json={"name": "joined", "hostnames": ["elsewhere-*"]},
                                   headers=admin)
            token = made.json()["token"]
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=supernode), base_url="http://sn") as peer:
                for name, body in (("with", {"cluster_token": token}), ("without", {})):
                    joined = await peer.post("/api/v1/peers", json={**register_body(name), **body})
                    assert joined.status_code == 200, joined.text
            placed = await _hosts(running, admin, cluster="joined")
            assert len(placed) == 1 and placed[0]["clusters"] == ["joined"]
            assert token_hash(token) not in json.dumps(await _hosts(running, admin))
            assert await _stored(running, placed[0]["id"], "cluster_token_hash") == token_hash(token)
            assert (await http.post("/api/v1/clusters/joined/token", headers=admin)).status_code == 200
            assert await _hosts(running, admin, cluster="joined") == []
    finally:
        await app.shutdown()


def test_a_host_joined_a_cluster_when_its_token_hash_is_the_clusters() -> None:
    mine = token_hash("dfc_mine")
    assert joined(mine, mine)
    assert not joined(token_hash("dfc_old"), mine) and not joined("", mine) and not joined("é" * 64, mine)
