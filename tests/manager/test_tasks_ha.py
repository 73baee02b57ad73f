"""Two `damselfly manager` processes on one PostgreSQL database, every part real: a PostgreSQL server from Debian's
packages, a docker-registry, a `damselfly supernode` (without the platform) and three `damselfly peer`s whose agents
run the jobs. The managers split the tasks by lease (manager/task_runner.py): the one holding a task mid-way is
SIGKILLed, the other takes it over once the lease runs out, and the task finishes with every host's job run once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.manager.test_hosts_live import _until
from tests.support.cluster import CLEAN_ENV, DamselflyCluster
from tests.support.identities import OPERATOR_TOKEN
from tests.support.images import ImageCache, push_image
from tests.support.jobs import host_id
from tests.support.ports import free_port, wait_http
from tests.support.postgres import BIN, SUPERUSER, PostgresCluster
from tests.support.procs import ManagedProcess
from tests.support.registry import RegistryServer

PASSWORD = "tasks-ha-admin-pass"
MiB = 1024 * 1024
LEASE = 4.0
FINAL = ("succeeded", "failed", "stopped")


@dataclass
class Manager:
    name: str
    url: str
    process: ManagedProcess
    token: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, self.url + path, headers=self.headers, timeout=15.0, trust_env=False, **kwargs)

    def task(self, task_id: int) -> dict[str, Any]:
        answer = self.call("GET", f"/api/v1/tasks/{task_id}")
        assert answer.status_code == 200, answer.text
        shown: dict[str, Any] = answer.json()
        return shown

    def events(self, task_id: int) -> list[str]:
        answer = self.call("GET", f"/api/v1/tasks/{task_id}/events", params={"limit": 500})
        assert answer.status_code == 200, answer.text
        return [f"{e['what']} {e['detail']}".strip() for e in answer.json()["items"]]

    def create(self, reference: str, hosts: list[str], **options: Any) -> int:
        made = self.call("POST", "/api/v1/tasks", json={"image": {"reference": reference},
                                                         "targets": {"hosts": hosts}, **options})
        assert made.status_code == 201, made.text
        return int(made.json()["id"])


class Sql:
    """Reads the shared database with Debian's psql, as an operator would: who holds which task's lease."""

    def __init__(self, postgres: PostgresCluster, database: str) -> None:
        self.postgres, self.database = postgres, database

    def rows(self, query: str) -> list[list[str]]:
        done = subprocess.run(
            [str(BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.postgres.port), "-U", SUPERUSER, "-d",
             self.database, "-AtF", "\t", "-c", query],
            capture_output=True, text=True, timeout=30, check=True,
        )
        return [line.split("\t") for line in done.stdout.splitlines()]

    def holder(self, task_id: int) -> str:
        ((owner,),) = self.rows(f"SELECT lease_owner FROM tasks WHERE id = {task_id}")
        return owner


def _manager(name: str, workdir: Path, database: list[str], supernode_url: str) -> Manager:
    port = free_port()
    process = ManagedProcess(
        [sys.executable, "-m", "damselfly", "manager", "--listen", f"127.0.0.1:{port}", *database,
         "--supernode", supernode_url, "--task-lease", str(LEASE), "--data-dir", str(workdir / "manager-data")],
        log_path=workdir / f"{name}.log", name=name, cwd=Path(__file__).resolve().parents[2],
        env={**CLEAN_ENV, "DAMSELFLY_ADMIN_PASSWORD": PASSWORD, "DAMSELFLY_OPERATOR_TOKEN": OPERATOR_TOKEN},
    )
    return Manager(name, f"http://127.0.0.1:{port}", process)


@pytest.fixture
def managers(postgres: PostgresCluster, tmp_path: Path) -> Iterator[Callable[[str], tuple[Manager, Manager]]]:
    """Two managers on one new database and one supernode, started at the same moment (both run the migrations
    and the first start's admin user at once), sharing one data directory for the secrets' key."""
    started: list[Manager] = []

    def start(supernode_url: str) -> tuple[Manager, Manager]:
        database = f"ha{free_port()}"
        url = postgres.create_database(database)
        # One is given the URL on its command line, the other in a file, as a URL with a password would be.
        url_file = tmp_path / "database-url"
        url_file.write_text(url)
        url_file.chmod(0o600)
        pair = (_manager("manager-a", tmp_path, ["--database", url], supernode_url),
                _manager("manager-b", tmp_path, ["--database-url-file", str(url_file)], supernode_url))
        for manager in pair:
            started.append(manager)
            manager.process.start()
        for manager in pair:
            wait_http(manager.url + "/api/v1/openapi.json", timeout=60.0, check=manager.process._raise_if_exited)
            login = httpx.post(manager.url + "/api/v1/login", json={"username": "admin", "password": PASSWORD},
                               timeout=15.0, trust_env=False)
            assert login.status_code == 200, login.text
            manager.token = login.json()["token"]
        return pair

    yield start
    for manager in started:
        manager.process.stop()


def _until_task(manager: Manager, task_id: int, done: Callable[[dict[str, Any]], bool],
                timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        task = manager.task(task_id)
        if done(task):
            return task
        assert time.monotonic() < deadline, json.dumps(task, indent=1)[:3000]
        time.sleep(0.3)


def _runs(cluster: DamselflyCluster, task_id: int) -> list[int]:
    """How many times each peer's agent started a run of the task's job (agent/runner.py logs each)."""
    return [peer.log_path.read_text(errors="replace").count(f"job t{task_id}-h") for peer in cluster.peers]


def _pid_of(owner: str) -> int:
    # manager/task_runner.py names a lease's holder HOST:PID:RANDOM.
    return int(owner.split(":")[-2])


@pytest.mark.timeout(600)
def test_a_killed_managers_task_is_taken_over_and_finishes_with_each_job_run_once(
    postgres: PostgresCluster, registry: RegistryServer, image_cache: ImageCache, tmp_path: Path,
    managers: Callable[[str], tuple[Manager, Manager]],
) -> None:
    with DamselflyCluster(tmp_path / "cluster", upstream_url=registry.url, peers_count=3,
                          operator_token=OPERATOR_TOKEN) as cluster:
        first, second = managers(cluster.supernode_url)
        database = first.process.args[first.process.args.index("--database") + 1].rsplit("/", 1)[1]
        sql = Sql(postgres, database)
        ids = [host_id(peer) for peer in cluster.peers]

        def every_host_listed() -> bool:
            answer = second.call("GET", "/api/v1/hosts", params={"state": "healthy"})
            return answer.status_code == 200 and {h["id"] for h in answer.json()["items"]} >= set(ids)

        assert _until(every_host_listed, 30), "the hosts were not listed healthy"
        # 20 MiB at 2 MB/s per host: about ten seconds of work per host, so the task is mid-way when its holder dies
        # and still when the other takes it over.
        image = push_image(image_cache.get([6 * MiB, 6 * MiB, 8 * MiB], seed=1701), registry.url, "ha/slow", "v1")
        size = sum(s for _, s in image.blobs)
        registry.reset_counts()
        task_id = first.create("ha/slow:v1", ids, rate="2MB/s")
        _until_task(first, task_id, lambda t: t["state"] == "running" and t["totals"]["bytes_done"] > 0)
        holder = sql.holder(task_id)
        by_pid = {m.process.pid: m for m in (first, second)}
        assert _pid_of(holder) in by_pid, holder
        dying = by_pid[_pid_of(holder)]
        survivor = next(m for m in (first, second) if m is not dying)

        dying.process.kill_hard()
        killed = time.monotonic()
        # The survivor holds the task within about the lease (its rounds are a second apart)...
        assert _until(lambda: sql.holder(task_id) not in ("", holder), LEASE + 10), "the task was not taken over"
        taken_after = time.monotonic() - killed
        assert _pid_of(sql.holder(task_id)) == survivor.process.pid
        assert taken_after <= LEASE + 3, taken_after
        at_takeover = survivor.task(task_id)
        assert at_takeover["state"] == "running" and at_takeover["totals"]["bytes_done"] < 3 * size, at_takeover
        # ...and the task finishes there.
        done = _until_task(survivor, task_id, lambda t: t["state"] in FINAL)
        assert done["state"] == "succeeded", json.dumps(done, indent=1)[:3000]
        for host in done["hosts"]:
            assert (host["state"], host["bytes_done"], host["bytes_total"]) == ("succeeded", size, size), host
        assert done["totals"]["from_upstream"] + done["totals"]["from_peers"] == 3 * size
        # Nothing done twice: each host's agent ran its job once (the survivor found the jobs on the supernode's
        # board and left them running), each host's end and the task's start and end were told once, and the
        # upstream sent about one copy of the image.
        assert _runs(cluster, task_id) == [1, 1, 1], [p.log_path.read_text()[-2000:] for p in cluster.peers]
        events = survivor.events(task_id)
        assert sum(e.startswith("started") for e in events) == 1, events
        assert sum(e.startswith("host succeeded") for e in events) == 3, events
        assert sum(e.startswith("succeeded") for e in events) == 1, events
        assert [e for e in events if e.startswith("taken over")] == [f"taken over by {sql.holder(task_id)} from "
                                                                      f"{holder}"], events
        assert {row[0] for row in sql.rows(f"SELECT attempt FROM task_hosts WHERE task_id = {task_id}")} == {"1"}
        assert registry.served_bytes() <= 1.05 * size, (registry.served_bytes(), size)
        # The survivor's API says the same in its listing.
        listed = survivor.call("GET", "/api/v1/tasks", params={"state": "succeeded"}).json()["items"]
        assert [t["id"] for t in listed] == [task_id]


@pytest.mark.timeout(600)
def test_with_both_managers_up_tasks_created_on_either_run_once(
    postgres: PostgresCluster, registry: RegistryServer, image_cache: ImageCache, tmp_path: Path,
    managers: Callable[[str], tuple[Manager, Manager]],
) -> None:
    with DamselflyCluster(tmp_path / "cluster", upstream_url=registry.url, peers_count=2,
                          operator_token=OPERATOR_TOKEN) as cluster:
        first, second = managers(cluster.supernode_url)
        ids = [host_id(peer) for peer in cluster.peers]

        def every_host_listed() -> bool:
            answer = first.call("GET", "/api/v1/hosts", params={"state": "healthy"})
            return answer.status_code == 200 and {h["id"] for h in answer.json()["items"]} >= set(ids)

        assert _until(every_host_listed, 30), "the hosts were not listed healthy"
        tasks: list[int] = []
        for n in range(4):
            push_image(image_cache.get([1 * MiB, 2 * MiB], seed=1800 + n), registry.url, f"ha/app{n}", "v1")
            tasks.append((first, second)[n % 2].create(f"ha/app{n}:v1", ids))
        for task_id in tasks:
            done = _until_task(second, task_id, lambda t: t["state"] in FINAL)
            assert done["state"] == "succeeded", json.dumps(done, indent=1)[:3000]
            assert _runs(cluster, task_id) == [1, 1], task_id
            events = first.events(task_id)
            counted = [sum(e.startswith(what) for e in events)
                       for what in ("started", "host succeeded", "succeeded", "taken over")]
            assert counted == [1, 2, 1, 0], events
