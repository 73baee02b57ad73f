"""A real `damselfly supernode` process hosts the platform on its own port: the peers' paths work as before, the
platform's answer beside them; `--no-manager` turns it off; a database that cannot be opened leaves the swarms
coordinated and the platform's paths answering 503, logged on one line without the URL's password."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
import pytest

from damselfly.hosting import host
from manager.app import ManagerApp
from manager.config import ManagerConfig
from supernode.client import SupernodeClient
from supernode.config import SupernodeConfig
from supernode.server import create_app
from tests.support.identities import register_request
from tests.support.ports import free_port, wait_http
from tests.support.procs import ProcessFactory

PASSWORD = "hosted-pass-1"


@pytest.mark.parametrize(
    ("path", "supernodes"),
    [("/healthz", True), ("/metrics", True), ("/api/v1/peers", True), ("/api/v1/peers/", True),
     ("/api/v1/peers/p1/heartbeat", True), ("/api/v1/swarms/sha256:ab/view", True), ("/api/v1/suspects/p1", True),
     ("/api/v1/jobs", True), ("/api/v1/jobs/j1", True), ("/api/v1/peers/p1/jobs", True),
     ("/api/v1/peers/p1/job-progress", True), ("/api/v1/jobs/j1/x", False),
     ("/api/v1/login", False), ("/api/v1/users/bob", False), ("/api/v1/tokens/3", False), ("/", False),
     ("/api/v1/peers/a/b/c", False), ("/healthzz", False)],
)
def test_each_path_goes_to_its_owner(path: str, supernodes: bool, tmp_path: Path) -> None:
    hosted = host(create_app(SupernodeConfig()), ManagerApp(ManagerConfig(data_dir=tmp_path)))
    assert hosted.supernode_owns(path) is supernodes


def _supernode(process_factory: ProcessFactory, tmp_path: Path, *extra: str) -> str:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process_factory(
        [sys.executable, "-m", "damselfly", "supernode", "--listen", f"127.0.0.1:{port}",
         "--data-dir", str(tmp_path / "sn"), *extra],
        env={"DAMSELFLY_ADMIN_PASSWORD": PASSWORD, "XDG_DATA_HOME": str(tmp_path / "xdg")},
        ready_url=f"{url}/healthz", name="supernode",
    )
    return url


async def _peers_still_work(url: str) -> None:
    async with httpx.AsyncClient(timeout=5.0, trust_env=False) as http:
        client = SupernodeClient(url, http)
        registered = await client.register(register_request("p0", 65002, "127.0.0.1"))
        assert registered.peer_id
        await client.heartbeat(registered.peer_id)
        listed = await client.list_peers()
        assert [p.peer_id for p in listed.peers] == [registered.peer_id]
        # A path of the supernode's with the wrong method stays the supernode's own answer, not the platform's.
        wrong = await http.put(f"{url}/api/v1/peers")
        assert wrong.status_code == 405


async def test_the_supernode_hosts_the_platform_on_its_port(process_factory: ProcessFactory, tmp_path: Path) -> None:
    url = _supernode(process_factory, tmp_path)
    wait_http(f"{url}/api/v1/openapi.json", expect_status=200)
    await _peers_still_work(url)
    with httpx.Client(base_url=url, timeout=5.0, trust_env=False) as http:
        login = http.post("/api/v1/login", json={"username": "admin", "password": PASSWORD})
        assert login.status_code == 200
        me = http.get("/api/v1/me", headers={"Authorization": f"Bearer {login.json()['token']}"})
        assert me.json()["name"] == "admin"
        missing = http.get("/api/v1/nothing")
        assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert (tmp_path / "sn" / "manager.sqlite3").is_file()


async def test_no_manager_leaves_the_supernode_alone(process_factory: ProcessFactory, tmp_path: Path) -> None:
    url = _supernode(process_factory, tmp_path, "--no-manager")
    await _peers_still_work(url)
    with httpx.Client(base_url=url, timeout=5.0, trust_env=False) as http:
        answer = http.post("/api/v1/login", json={"username": "admin", "password": PASSWORD})
    assert answer.status_code == 404
    assert not (tmp_path / "sn" / "manager.sqlite3").exists()


async def test_a_broken_database_does_not_stop_the_swarms(process_factory: ProcessFactory, tmp_path: Path) -> None:
    # Nothing listens on this port: the database cannot be reached.
    database = f"postgresql://damselfly:very-secret-pw@127.0.0.1:{free_port()}/platform"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = process_factory(
        [sys.executable, "-m", "damselfly", "supernode", "--listen", f"127.0.0.1:{port}",
         "--data-dir", str(tmp_path / "sn"), "--database", database],
        env={"DAMSELFLY_ADMIN_PASSWORD": PASSWORD}, ready_url=f"{url}/healthz", name="supernode",
    )
    deadline = time.monotonic() + 20
    while "the platform is unavailable" not in proc.log_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    await _peers_still_work(url)
    with httpx.Client(base_url=url, timeout=5.0, trust_env=False) as http:
        answer = http.post("/api/v1/login", json={"username": "admin", "password": PASSWORD})
    assert answer.status_code == 503
    assert answer.json()["code"] == "unavailable"
    log = proc.log_text()
    assert [line for line in log.splitlines() if "the platform is unavailable" in line], log
    assert len([line for line in log.splitlines() if "unavailable" in line]) == 1, log
    assert "very-secret-pw" not in log
    assert "Traceback" not in log
