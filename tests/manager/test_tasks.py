"""Distribution tasks through the API on SQLite and PostgreSQL, with the real manager app and its task runner.

The hosts are a real Scheduler's peers (the supernode's registry, read in place as a hosted platform does). The job
channel is the real BoardChannel over the supernode's real JobBoard (tests/manager/played_board.py), where the test
plays the hosts by recording their progress: the end-to-end tests with real hosts are elsewhere.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from manager.config import ManagerConfig
from manager.host_source import SchedulerSource
from manager.job_channel import BoardChannel
from manager.models import Task
from supernode.jobs import BlobProgress
from supernode.scheduler import Scheduler
from tests.manager.conftest import ADMIN_PASSWORD, Running, start
from tests.manager.played_board import PlayedBoard

IMAGE = {"reference": "registry.example.com/team/app:1.4", "platforms": ["linux/amd64"]}


@dataclass
class Tasks:
    platform: Running
    scheduler: Scheduler
    board: PlayedBoard
    admin: dict[str, str]

    def host(self, name: str, address: str, labels: dict[str, str] | None = None) -> None:
        self.scheduler.register(name, f"http://{address}:65002", labels or {}, time.monotonic())

    async def create(self, headers: dict[str, str] | None = None, **body: Any) -> Any:
        answer = await self.platform.http.post("/api/v1/tasks", json={"kind": "image", "image": IMAGE, **body},
                                               headers=headers or self.admin)
        return answer

    async def show(self, task_id: int) -> dict[str, Any]:
        answer = await self.platform.http.get(f"/api/v1/tasks/{task_id}", headers=self.admin)
        assert answer.status_code == 200, answer.text
        shown: dict[str, Any] = answer.json()
        return shown

    async def until(self, check: Callable[[], Awaitable[bool] | bool], what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            outcome = check()
            if await outcome if isinstance(outcome, Awaitable) else outcome:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"not within {timeout} s: {what}")

    async def state(self, task_id: int, state: str) -> dict[str, Any]:
        async def reached() -> bool:
            return bool((await self.show(task_id))["state"] == state)

        await self.until(reached, f"task {task_id} {state}")
        return await self.show(task_id)


async def _tasks(config: ManagerConfig, board: PlayedBoard, scheduler: Scheduler) -> AsyncIterator[Tasks]:
    async for running in start(config, SchedulerSource(scheduler), BoardChannel(board)):
        yield Tasks(running, scheduler, board, await running.admin())


@pytest.fixture
async def tasks(manager_config: ManagerConfig, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Tasks]:
    monkeypatch.setenv("DAMSELFLY_ADMIN_PASSWORD", ADMIN_PASSWORD)
    config = replace(manager_config, task_round=0.05)
    async for running in _tasks(config, PlayedBoard(), Scheduler()):
        yield running


async def test_a_task_to_hosts_by_id_and_label_succeeds_when_every_host_did(tasks: Tasks) -> None:
    for name, address, zone in (("a", "10.0.0.1", "z1"), ("b", "10.0.0.2", "z1"), ("c", "10.0.0.3", "z2"),
                                ("d", "10.0.0.4", "z3")):
        tasks.host(name, address, {"zone": zone})
    made = await tasks.create(targets={"hosts": ["a", "10.0.0.2"], "selector": {"zone": "z2"}}, rate="50MB/s",
                              timeout="30m")
    assert made.status_code == 201, made.text
    task = made.json()
    assert [h["host"] for h in task["hosts"]] == ["a", "b", "c"]
    assert (task["rate"], task["timeout"], task["mode"], task["state"]) == (50_000_000, 1800.0, "cache", "pending")
    await tasks.until(lambda: {j.host_id for j in tasks.board.jobs.values()} == {"a", "b", "c"}, "three jobs put")
    job = tasks.board.job_of("a")
    assert job is not None and job.image is not None
    assert (job.image.reference, job.image.platforms, job.rate, job.task_id) == (IMAGE["reference"],
                                                                                 ("linux/amd64",), 50_000_000,
                                                                                 str(task["id"]))
    assert job.deadline > time.time() + 1700
    blobs = (BlobProgress("sha256:" + "1" * 64, 100, 40, 40, 0, "running"),)
    tasks.board.report("a", "running", 40, 100, upstream=40, blobs=blobs)

    async def a_progressed() -> bool:
        return bool((await tasks.show(task["id"]))["hosts"][0]["bytes_done"] == 40)

    await tasks.until(a_progressed, "host a's progress stored")
    shown = await tasks.show(task["id"])
    assert shown["state"] == "running"
    assert shown["hosts"][0]["blobs"][0]["digest"] == "sha256:" + "1" * 64
    assert shown["blobs"][0]["bytes_done"] == 40
    done = (BlobProgress("sha256:" + "1" * 64, 100, 100, 40, 60, "succeeded"),)
    for host in ("a", "b", "c"):
        tasks.board.report(host, "succeeded", 100, 100, upstream=40 if host == "a" else 0,
                           peers=60 if host == "a" else 100, blobs=done)
    final = await tasks.state(task["id"], "succeeded")
    assert final["totals"]["succeeded"] == 3 and final["totals"]["bytes_done"] == 300
    assert final["totals"]["from_upstream"] == 40 and final["totals"]["from_peers"] == 260
    assert final["blobs"][0]["hosts_done"] == 3
    # Their last progress stored, the jobs leave the supernode.
    await tasks.until(lambda: not tasks.board.jobs, "jobs cancelled once stored")
    events = (await tasks.platform.http.get(f"/api/v1/tasks/{task['id']}/events", headers=tasks.admin)).json()
    whats = [e["what"] for e in events["items"]]
    assert whats[:2] == ["created", "started"] and whats[-1] == "succeeded"
    assert whats.count("host succeeded") == 3 and events["items"][0]["actor"] == "admin"


async def test_a_failed_host_fails_the_task_and_a_retry_gives_it_a_new_attempt(tasks: Tasks) -> None:
    tasks.host("a", "10.0.0.1")
    tasks.host("b", "10.0.0.2")
    task = (await tasks.create(targets={"hosts": ["a", "b"]})).json()
    await tasks.until(lambda: len(tasks.board.jobs) == 2, "two jobs")
    tasks.board.report("a", "succeeded", 10, 10)
    first = tasks.board.report("b", "failed", error="manifest unknown")
    failed = await tasks.state(task["id"], "failed")
    assert "1 of 2 hosts" in failed["error"] and "b: manifest unknown" in failed["error"]
    assert [h["state"] for h in failed["hosts"]] == ["succeeded", "failed"]
    await tasks.until(lambda: not tasks.board.jobs, "jobs cancelled")
    retried = await tasks.platform.http.post(f"/api/v1/tasks/{task['id']}/retry", headers=tasks.admin)
    assert retried.status_code == 200, retried.text
    await tasks.until(lambda: tasks.board.job_of("b") is not None, "b's second job")
    second = tasks.board.job_of("b")
    assert second is not None and second.job_id != first and tasks.board.job_of("a") is None
    tasks.board.report("b", "succeeded", 10, 10)
    final = await tasks.state(task["id"], "succeeded")
    assert [h["attempt"] for h in final["hosts"]] == [1, 2]
    again = await tasks.platform.http.post(f"/api/v1/tasks/{task['id']}/retry", headers=tasks.admin)
    assert again.status_code == 409 and again.json()["code"] == "conflict"


async def test_concurrency_gives_jobs_to_that_many_hosts_at_once(tasks: Tasks) -> None:
    for n in range(3):
        tasks.host(f"h{n}", f"10.0.1.{n}", {"pool": "p"})
    task = (await tasks.create(targets={"selector": ["pool=p"]}, concurrency=1)).json()
    for n in range(3):
        await tasks.until(lambda n=n: tasks.board.job_of(f"h{n}") is not None, f"h{n}'s job")  # type: ignore[misc]
        assert len(tasks.board.jobs) == 1
        tasks.board.report(f"h{n}", "succeeded", 1, 1)
        await tasks.until(lambda n=n: tasks.board.job_of(f"h{n}") is None, "its job done")  # type: ignore[misc]
    await tasks.state(task["id"], "succeeded")


async def test_stop_cancels_every_job_within_seconds_and_delete_needs_a_finished_task(tasks: Tasks) -> None:
    tasks.host("a", "10.0.0.1")
    tasks.host("b", "10.0.0.2")
    task = (await tasks.create(targets={"hosts": ["a", "b"]})).json()
    await tasks.until(lambda: len(tasks.board.jobs) == 2, "two jobs")
    tasks.board.report("a", "running", 5, 10)
    refused = await tasks.platform.http.delete(f"/api/v1/tasks/{task['id']}", headers=tasks.admin)
    assert refused.status_code == 409 and "stop it first" in refused.json()["message"]
    started = time.monotonic()
    stopped = await tasks.platform.http.post(f"/api/v1/tasks/{task['id']}/stop", headers=tasks.admin)
    assert stopped.status_code == 200 and stopped.json()["state"] == "stopped"
    await tasks.until(lambda: not tasks.board.jobs, "jobs cancelled", timeout=3.0)
    assert time.monotonic() - started < 3.0
    assert {h["state"] for h in (await tasks.show(task["id"]))["hosts"]} == {"stopped"}
    assert (await tasks.platform.http.post(f"/api/v1/tasks/{task['id']}/stop", headers=tasks.admin)).status_code \
        == 409
    deleted = await tasks.platform.http.delete(f"/api/v1/tasks/{task['id']}", headers=tasks.admin)
    assert deleted.status_code == 204
    gone = await tasks.platform.http.get(f"/api/v1/tasks/{task['id']}", headers=tasks.admin)
    assert gone.status_code == 404 and gone.json()["code"] == "not_found"
    events = await tasks.platform.http.get(f"/api/v1/tasks/{task['id']}/events", headers=tasks.admin)
    assert events.status_code == 404


async def test_a_host_down_at_start_gets_its_job_when_it_returns(tasks: Tasks) -> None:
    tasks.host("a", "10.0.0.1")
    tasks.host("late", "10.0.0.9")
    await tasks.platform.http.get("/api/v1/hosts", headers=tasks.admin)  # the platform has seen it
    tasks.scheduler.remove_peer("late")
    task = (await tasks.create(targets={"hosts": ["a", "late"]})).json()
    await tasks.until(lambda: tasks.board.job_of("a") is not None, "a's job")
    await asyncio.sleep(0.3)
    assert tasks.board.job_of("late") is None
    assert [h["state"] for h in (await tasks.show(task["id"]))["hosts"]] == ["running", "pending"]
    tasks.host("late", "10.0.0.9")
    await tasks.until(lambda: tasks.board.job_of("late") is not None, "late's job once it is back")


async def test_a_host_down_until_the_timeout_fails_the_task_saying_so(tasks: Tasks) -> None:
    tasks.host("gone", "10.0.0.8")
    await tasks.platform.http.get("/api/v1/hosts", headers=tasks.admin)
    tasks.scheduler.remove_peer("gone")
    task = (await tasks.create(targets={"hosts": ["gone"]}, timeout=0.5)).json()
    failed = await tasks.state(task["id"], "failed")
    assert "down until the timeout" in failed["hosts"][0]["error"]


async def test_cordoned_hosts_are_skipped(tasks: Tasks) -> None:
    tasks.host("a", "10.0.0.1", {"zone": "z"})
    tasks.host("b", "10.0.0.2", {"zone": "z"})
    assert (await tasks.platform.http.post("/api/v1/hosts/b/cordon", headers=tasks.admin)).status_code == 200
    made = (await tasks.create(targets={"selector": {"zone": "z"}})).json()
    assert [h["host"] for h in made["hosts"]] == ["a"] and made["cordoned"] == ["b"]
    only = await tasks.create(targets={"hosts": ["b"]})
    assert only.status_code == 400 and "1 cordoned" in only.json()["message"]


async def test_dry_run_says_what_each_host_lacks_and_what_the_upstream_should_send(tasks: Tasks) -> None:
    tasks.host("a", "10.0.0.1")
    tasks.host("b", "10.0.0.2")
    one, two = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    tasks.board.dry_answers = {
        "a": (BlobProgress(one, 100, 100), BlobProgress(two, 50, 0)),
        "b": (BlobProgress(one, 100, 0), BlobProgress(two, 50, 10)),
    }
    for answer in (
        await tasks.platform.http.post("/api/v1/tasks/dry-run", json={"image": IMAGE,
                                                                       "targets": {"hosts": ["a", "b"]}},
                                       headers=tasks.admin),
        await tasks.platform.http.post("/api/v1/tasks?dry_run=true", json={"image": IMAGE,
                                                                            "targets": {"hosts": ["a", "b"]}},
                                       headers=tasks.admin),
    ):
        assert answer.status_code == 200, answer.text
        body = answer.json()
        by_host = {h["host"]: h for h in body["hosts"]}
        assert [m["digest"] for m in by_host["a"]["missing"]] == [two]
        assert by_host["a"]["bytes_missing"] == 50 and by_host["b"]["bytes_missing"] == 140
        assert body["bytes_to_move"] == 190
        # `one` is on a already: the peers spread it; only `two` comes from the upstream, once.
        assert body["upstream_bytes"] == 50
    assert all(job.dry_run for job in tasks.board.jobs.values()) and not tasks.board.jobs
    listed = await tasks.platform.http.get("/api/v1/tasks", headers=tasks.admin)
    assert listed.json()["items"] == []


async def test_a_restarted_manager_resumes_its_running_task_without_duplicating_jobs(
    manager_config: ManagerConfig, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DAMSELFLY_ADMIN_PASSWORD", ADMIN_PASSWORD)
    config = replace(manager_config, task_round=0.05)
    board, scheduler = PlayedBoard(), Scheduler()
    task_id = 0
    async for first in _tasks(config, board, scheduler):
        first.host("a", "10.0.0.1")
        first.host("b", "10.0.0.2")
        task_id = (await first.create(targets={"hosts": ["a", "b"]})).json()["id"]
        await first.until(lambda: len(board.jobs) == 2, "two jobs")
        board.report("a", "succeeded", 10, 10)
        await first.until(lambda: board.job_of("a") is None, "a done and its job cancelled")
        board.report("b", "running", 3, 10)
    held = set(board.jobs)
    assert len(held) == 1
    # The supernode restarted too, and forgot every job: the new manager puts b's again, the same job.
    forgetful = PlayedBoard()
    async for second in _tasks(config, forgetful, scheduler):
        await second.until(lambda: set(forgetful.jobs) == held, "b's job put again")
        shown = await second.show(task_id)
        assert shown["state"] == "running" and shown["hosts"][0]["state"] == "succeeded"
        forgetful.report("b", "succeeded", 10, 10)
        await second.state(task_id, "succeeded")
        # a's job, already done, was not given again; b's is one job however often it was put.
        assert set(forgetful.puts) == held
    # And with a board that kept its jobs: putting them again keeps one job each.
    board_kept = PlayedBoard()
    async for third in _tasks(config, board_kept, scheduler):
        third.host("c", "10.0.0.3")
        other = (await third.create(targets={"hosts": ["c"]})).json()["id"]
        await third.until(lambda: len(board_kept.jobs) == 1, "c's job")
    async for fourth in _tasks(config, board_kept, scheduler):
        await fourth.until(lambda: len(board_kept.puts) >= 2, "c's job put again at start")
        assert len(board_kept.jobs) == 1 and len(set(board_kept.puts)) == 1
        board_kept.report("c", "succeeded", 1, 1)
        await fourth.state(other, "succeeded")


async def test_list_filters_and_pages(tasks: Tasks) -> None:
    tasks.host("a", "10.0.0.1")
    ids = [(await tasks.create(targets={"hosts": ["a"]})).json()["id"] for _ in range(3)]
    file_task = await tasks.create(kind="file", image=None,
                                   file={"url": "http://files.example/x.tar", "path": "/srv/x.tar"},
                                   targets={"hosts": ["a"]})
    assert file_task.status_code == 400  # an image field on a file task
    body = {"kind": "file", "file": {"url": "http://files.example/x.tar", "path": "/srv/x.tar"},
            "targets": {"hosts": ["a"]}}
    made = await tasks.platform.http.post("/api/v1/tasks", json=body, headers=tasks.admin)
    assert made.status_code == 201, made.text
    http = tasks.platform.http
    page = (await http.get("/api/v1/tasks", params={"limit": 2, "kind": "image"}, headers=tasks.admin)).json()
    assert [t["id"] for t in page["items"]] == ids[::-1][:2] and page["next"]
    rest = (await http.get("/api/v1/tasks", params={"limit": 2, "kind": "image", "cursor": page["next"]},
                           headers=tasks.admin)).json()
    assert [t["id"] for t in rest["items"]] == [ids[0]] and rest["next"] is None
    files = (await http.get("/api/v1/tasks", params={"kind": "file"}, headers=tasks.admin)).json()["items"]
    assert [t["file"]["path"] for t in files] == ["/srv/x.tar"]
    bad = await http.get("/api/v1/tasks", params={"state": "done"}, headers=tasks.admin)
    assert bad.status_code == 400 and bad.json()["code"] == "invalid"


async def test_a_viewer_reads_tasks_but_cannot_write_them(tasks: Tasks) -> None:
    tasks.host("a", "10.0.0.1")
    task = (await tasks.create(targets={"hosts": ["a"]})).json()
    viewer = await tasks.platform.user("vic", "viewer")
    http = tasks.platform.http
    assert (await http.get("/api/v1/tasks", headers=viewer)).status_code == 200
    assert (await http.get(f"/api/v1/tasks/{task['id']}", headers=viewer)).status_code == 200
    for answer in (
        await tasks.create(headers=viewer, targets={"hosts": ["a"]}),
        await http.post("/api/v1/tasks/dry-run", json={"image": IMAGE, "targets": {"hosts": ["a"]}}, headers=viewer),
        await http.post(f"/api/v1/tasks/{task['id']}/stop", headers=viewer),
        await http.post(f"/api/v1/tasks/{task['id']}/retry", headers=viewer),
        await http.delete(f"/api/v1/tasks/{task['id']}", headers=viewer),
        await http.post("/api/v1/secrets", json={"name": "s", "username": "u", "password": "p"}, headers=viewer),
    ):
        assert answer.status_code == 403, answer.text
        assert answer.json()["code"] == "forbidden"
    audit = (await http.get("/api/v1/audit", headers=tasks.admin)).json()["items"]
    refused = {(e["action"], e["result"]) for e in audit if e["actor"] == "vic"}
    assert ("create_task", "refused") in refused and ("stop_task", "refused") in refused
    assert any(e["action"] == "create_task" and e["result"] == "ok" and e["target"] == f"task:{task['id']}"
               for e in audit)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"kind": "zip"}, "kind must be image or file"),
        ({"image": None}, "image must be an object"),
        ({"image": {"reference": ""}}, "image.reference is empty"),
        ({"rate": "fast"}, "rate: expected bytes per second"),
        ({"rate": -1}, "rate must be a number"),
        ({"timeout": "soon"}, "timeout: expected a duration"),
        ({"concurrency": 1.5}, "concurrency must be a whole number"),
        ({"mode": "turbo"}, "mode must be cache or runtime"),
        ({"targets": {}}, "name hosts, clusters or a selector"),
        ({"targets": {"hosts": ["nobody"]}}, "no host 'nobody'"),
        ({"targets": {"clusters": ["nowhere"]}}, "no cluster 'nowhere'"),
        ({"targets": {"hosts": ["a"], "count": 1, "percent": 50}}, "a count or a percent, not both"),
        ({"targets": {"hosts": ["a"], "bogus": 1}}, "unknown field 'bogus'"),
        ({"secret": "missing"}, "no secret 'missing'"),
        ({"surprise": 1}, "unknown field 'surprise'"),
        ({"kind": "file", "image": None, "file": {"url": "http://x/y", "path": "relative"}}, "absolute path"),
    ],
)
async def test_bad_task_bodies_are_a_400_naming_the_problem(tasks: Tasks, body: dict[str, Any],
                                                            message: str) -> None:
    tasks.host("a", "10.0.0.1")
    full = {"kind": "image", "image": IMAGE, "targets": {"hosts": ["a"]}, **body}
    full = {k: v for k, v in full.items() if v is not None}
    answer = await tasks.platform.http.post("/api/v1/tasks", json=full, headers=tasks.admin)
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "invalid" and message in answer.json()["message"], answer.text
    assert (await tasks.platform.http.get("/api/v1/tasks/x1", headers=tasks.admin)).status_code == 404


async def test_two_managers_on_one_database_move_a_task_once_and_the_survivor_finishes_it(
    manager_config: ManagerConfig, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DAMSELFLY_ADMIN_PASSWORD", ADMIN_PASSWORD)
    config = replace(manager_config, task_round=0.05, task_lease=0.6)
    board, scheduler = PlayedBoard(), Scheduler()

    async def holder(of: Tasks, task_id: int) -> str:
        async with of.platform.app.platform.sessions() as session:  # type: ignore[union-attr]
            task = await session.get(Task, task_id)
            assert task is not None
            return task.lease_owner

    async for first in _tasks(config, board, scheduler):
        async for second in _tasks(config, board, scheduler):
            first.host("a", "10.0.0.1")
            first.host("b", "10.0.0.2")
            task_id = (await first.create(targets={"hosts": ["a", "b"]})).json()["id"]
            await first.until(lambda: len(board.jobs) == 2, "two jobs")
            owners = {m.platform.app.platform.runner.owner: m for m in (first, second)}  # type: ignore[union-attr]
            held_by = await holder(first, task_id)
            assert held_by in owners
            # Both run rounds; one holds the task: the other neither starts it again nor gives other jobs.
            await asyncio.sleep(0.5)
            assert await holder(first, task_id) == held_by and len(set(board.puts)) == 2
            board.report("a", "succeeded", 10, 10)
            # The holder dies between two rounds (its loop ends without handing its tasks back; a process that
            # dies takes its database connection with it, so it holds no lock, only its lease): the survivor takes
            # over once the lease runs out, and finishes from where the database stood.
            dying = owners[held_by]
            loop = dying.platform.app._runner_task
            runner = dying.platform.app.platform.runner  # type: ignore[union-attr]
            assert loop is not None and runner is not None
            runner.stop()
            await asyncio.wait_for(asyncio.shield(loop), 20)
            survivor = next(m for owner, m in owners.items() if owner != held_by)
            survivor_owner = survivor.platform.app.platform.runner.owner  # type: ignore[union-attr]

            async def taken_over(by: Tasks = survivor, task_id: int = task_id, owner: str = survivor_owner) -> bool:
                return await holder(by, task_id) == owner

            await survivor.until(taken_over, "the survivor holds the task", timeout=10)
            board.report("b", "succeeded", 10, 10)
            done = await survivor.state(task_id, "succeeded")
            assert [h["state"] for h in done["hosts"]] == ["succeeded", "succeeded"]
            # One job per host, whoever put it; the task started once.
            assert len(set(board.puts)) == 2
            events = await survivor.platform.http.get(f"/api/v1/tasks/{task_id}/events", headers=survivor.admin)
            assert [e["what"] for e in events.json()["items"]].count("started") == 1


async def test_a_tasks_log_is_read_from_either_end(tasks: Tasks) -> None:
    tasks.host("a", "10.0.0.1")
    task = (await tasks.create(targets={"hosts": ["a"]})).json()
    await tasks.until(lambda: tasks.board.job_of("a") is not None, "a's job")
    stopped = await tasks.platform.http.post(f"/api/v1/tasks/{task['id']}/stop", headers=tasks.admin)
    assert stopped.status_code == 200, stopped.text
    path = f"/api/v1/tasks/{task['id']}/events"
    oldest = (await tasks.platform.http.get(path, headers=tasks.admin)).json()["items"]
    newest = (await tasks.platform.http.get(f"{path}?order=newest&limit=1", headers=tasks.admin)).json()
    assert oldest[0]["what"] == "created" and oldest[-1]["what"] == "stopped"
    assert [e["what"] for e in newest["items"]] == ["stopped"] and newest["next"] is not None
    before = (await tasks.platform.http.get(f"{path}?order=newest&limit=1&cursor={newest['next']}",
                                            headers=tasks.admin)).json()["items"]
    assert before == [oldest[-2]]
    wrong = await tasks.platform.http.get(f"{path}?order=sideways", headers=tasks.admin)
    assert wrong.status_code == 400 and wrong.json()["code"] == "invalid"
