"""A manager alone gives its jobs through a real supernode's API (manager/job_channel.py SupernodeChannel over
supernode/client.py OperatorClient), and the host takes them and reports on the supernode's own routes."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import httpx
import pytest

from manager.app import ManagerApp
from manager.config import ManagerConfig
from manager.host_source import SupernodeApiSource
from manager.job_channel import ChannelUnavailable, SupernodeChannel
from supernode.config import SupernodeConfig
from supernode.jobs import ImageSpec, Job, JobList
from supernode.scheduler import Scheduler
from supernode.server import create_app as create_supernode_app
from tests.manager.conftest import ADMIN_PASSWORD
from tests.support.identities import OPERATOR_TOKEN, credential_headers, register_body


async def test_a_standalone_managers_task_reaches_the_host_through_the_supernode(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DAMSELFLY_ADMIN_PASSWORD", ADMIN_PASSWORD)
    supernode = create_supernode_app(SupernodeConfig(operator_token=OPERATOR_TOKEN))
    to_supernode = httpx.ASGITransport(app=supernode)
    config = replace(ManagerConfig(data_dir=tmp_path / "data"), task_round=0.05)  # type: ignore[operator]
    app = ManagerApp(config, SupernodeApiSource(["http://sn"], OPERATOR_TOKEN, transport=to_supernode),
                     SupernodeChannel(["http://sn"], OPERATOR_TOKEN, transport=to_supernode))
    assert await app.startup()
    try:
        async with httpx.AsyncClient(transport=to_supernode, base_url="http://sn") as host, \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as http:
            registered = (await host.post("/api/v1/peers", json=register_body("edge"))).json()
            me = credential_headers(registered["peer_id"], registered["credential"])
            login = await http.post("/api/v1/login", json={"username": "admin", "password": ADMIN_PASSWORD})
            admin = {"Authorization": f"Bearer {login.json()['token']}"}
            made = await http.post("/api/v1/tasks", json={"image": {"reference": "team/app:1"}, "rate": "1MB/s",
                                                          "targets": {"hosts": [registered["peer_id"]]}},
                                   headers=admin)
            assert made.status_code == 201, made.text
            # The host's long-poll, as its daemon makes it.
            listed = JobList(-1)
            deadline = time.monotonic() + 5
            while not listed.jobs and time.monotonic() < deadline:
                polled = await host.get(f"/api/v1/peers/{registered['peer_id']}/jobs",
                                        params={"since": listed.version, "wait": 1}, headers=me)
                listed = JobList.parse(polled.json())
            jobs = listed.jobs
            assert [(j.task_id, j.rate) for j in jobs] == [(str(made.json()["id"]), 1_000_000)]
            report = {"progress": [{"job_id": jobs[0].job_id, "state": "succeeded", "bytes_done": 7,
                                    "bytes_total": 7, "from_upstream": 7}]}
            posted = await host.post(f"/api/v1/peers/{registered['peer_id']}/job-progress", json=report, headers=me)
            assert posted.status_code == 204, posted.text
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                shown = (await http.get(f"/api/v1/tasks/{made.json()['id']}", headers=admin)).json()
                if shown["state"] == "succeeded":
                    break
                await asyncio.sleep(0.05)
            assert shown["state"] == "succeeded" and shown["hosts"][0]["from_upstream"] == 7
            # Its last progress stored, the job is withdrawn: the supernode holds nothing of it.
            while time.monotonic() < deadline:
                held = await host.get("/api/v1/jobs", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
                if held.json()["progress"] == []:
                    break
                await asyncio.sleep(0.05)
            assert held.json()["progress"] == []
    finally:
        await app.shutdown()


async def test_a_refused_token_or_an_unreachable_supernode_is_a_channel_error_of_one_line() -> None:
    supernode = create_supernode_app(SupernodeConfig(operator_token=OPERATOR_TOKEN))
    wrong = SupernodeChannel(["http://sn"], "not-the-token", transport=httpx.ASGITransport(app=supernode))
    away = SupernodeChannel(["http://127.0.0.1:9"], OPERATOR_TOKEN, timeout=1.0)
    job = Job("j1", "1", "h1", "image", image=None, file=None)
    try:
        for channel in (wrong, away):
            with pytest.raises(ChannelUnavailable) as refused:
                await channel.put(job)
            assert "\n" not in str(refused.value)
            with pytest.raises(ChannelUnavailable):
                await channel.progress()
    finally:
        await wrong.close()
        await away.close()


async def test_with_two_supernodes_a_hosts_job_goes_to_the_one_its_daemon_polls() -> None:
    from starlette.types import Receive, Scope, Send

    from supernode.shards import owner_index

    apps = {name: create_supernode_app(SupernodeConfig(operator_token=OPERATOR_TOKEN)) for name in ("sn1", "sn2")}

    async def by_host(scope: Scope, receive: Receive, send: Send) -> None:
        host = dict(scope["headers"])[b"host"].decode()
        await apps[host](scope, receive, send)

    urls = ["http://sn1", "http://sn2"]
    channel = SupernodeChannel(urls, OPERATOR_TOKEN, transport=httpx.ASGITransport(app=by_host))
    try:
        hosts = [f"host-{n}" for n in range(6)]
        for host in hosts:
            await channel.put(Job(f"j-{host}", "1", host, "image", image=ImageSpec("team/app:1")))
        operator = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=by_host)) as http:
            for host in hosts:
                owner = urls[owner_index(urls, host)]
                other = urls[1 - owner_index(urls, host)]
                # The peer's shards (supernode/shards.py) poll the owner of the host's id: the job is there only.
                assert (await http.delete(f"{other}/api/v1/jobs/j-{host}", headers=operator)).status_code == 404
                assert (await http.delete(f"{owner}/api/v1/jobs/j-{host}", headers=operator)).status_code == 204
        assert len({owner_index(urls, host) for host in hosts}) == 2
    finally:
        await channel.close()


class _Restartable:
    """The supernode's address, behind which a new supernode (empty state) may stand in for the old one."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


async def test_a_supernode_restarted_under_a_standalone_manager_is_told_the_cordons_again(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DAMSELFLY_ADMIN_PASSWORD", ADMIN_PASSWORD)
    config = SupernodeConfig(operator_token=OPERATOR_TOKEN)
    first = Scheduler(config.scheduler_config())
    supernode = _Restartable(create_supernode_app(config, scheduler=first))
    to_supernode = httpx.ASGITransport(app=supernode)
    manager_config = replace(ManagerConfig(data_dir=tmp_path / "data"), cordon_every=0.2)  # type: ignore[operator]
    app = ManagerApp(manager_config, SupernodeApiSource(["http://sn"], OPERATOR_TOKEN, transport=to_supernode), None)
    assert await app.startup()
    try:
        async with httpx.AsyncClient(transport=to_supernode, base_url="http://sn") as host, \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as http:
            peer_id = (await host.post("/api/v1/peers", json=register_body("edge"))).json()["peer_id"]
            login = await http.post("/api/v1/login", json={"username": "admin", "password": ADMIN_PASSWORD})
            admin = {"Authorization": f"Bearer {login.json()['token']}"}
            cordoned = await http.post(f"/api/v1/hosts/{peer_id}/cordon", headers=admin)
            assert cordoned.status_code == 200 and cordoned.json()["scheduler_told"], cordoned.text
            assert first.cordoned == {peer_id}
            # The supernode restarts: its scheduler knows nothing; the host registers with it again.
            second = Scheduler(config.scheduler_config())
            supernode.app = create_supernode_app(config, scheduler=second)
            again = (await host.post("/api/v1/peers", json=register_body("edge"))).json()["peer_id"]
            assert again == peer_id and second.cordoned == frozenset()
            deadline = time.monotonic() + 5
            while second.cordoned != {peer_id} and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert second.cordoned == {peer_id}
    finally:
        await app.shutdown()
