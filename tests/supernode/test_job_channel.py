"""The job channel (supernode/jobs.py) against a real supernode process: the platform puts, cancels and reads jobs
with the operators' token (OperatorClient), hosts registered with their bound ids long-poll their jobs and post
progress with their credentials (SupernodeClient), and every refusal is answered in the supernode's error shape.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from supernode import routes
from supernode.client import JobRefused, OperatorClient, OperatorRefused, SupernodeClient, SupernodeUnavailable
from supernode.jobs import FileSpec, ImageSpec, Job, JobProgress, ProgressReport
from tests.support.cluster import DamselflyCluster
from tests.support.identities import (
    OPERATOR_TOKEN,
    credential_headers,
    operator_headers,
    peer_id,
    register_body,
    register_request,
)

TOKEN = "job-channel-secret"
JOIN = {"X-Damselfly-Token": TOKEN}
# No peer runs here: the upstream is never dialled.
NO_UPSTREAM = "http://127.0.0.1:9"


def start_supernode(workdir: Path) -> DamselflyCluster:
    return DamselflyCluster(
        workdir, upstream_url=NO_UPSTREAM, peers_count=0, join_token=TOKEN, operator_token=OPERATOR_TOKEN
    ).start()


@pytest.fixture(scope="module")
def supernode(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cluster = start_supernode(tmp_path_factory.mktemp("job-channel"))
    try:
        yield cluster.supernode_url
    finally:
        cluster.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:
        yield client


async def host(http: httpx.AsyncClient, url: str, name: str) -> tuple[SupernodeClient, str]:
    """A host registered under its bound id: its client (holding its credential) and its peer id."""
    client = SupernodeClient(url, http, join_token=TOKEN)
    await client.register(register_request(name))
    return client, peer_id(name)


def image_job(job_id: str, host_id: str, rate: int = 0) -> Job:
    return Job(job_id, "task-7", host_id, "image", image=ImageSpec("team/app:1.4", ("linux/amd64",)), rate=rate)


def error_of(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str), body
    return str(body["error"])


async def test_a_put_job_reaches_its_waiting_host_at_once_and_once(supernode: str, http: httpx.AsyncClient) -> None:
    platform = OperatorClient(supernode, http, OPERATOR_TOKEN)
    client, me = await host(http, supernode, "put-a")
    _, other = await host(http, supernode, "put-b")
    start = await client.jobs(me, since=-1, wait=0)
    assert start.jobs == ()
    waiting = asyncio.ensure_future(client.jobs(me, since=start.version, wait=20))
    await asyncio.sleep(0.5)
    assert not waiting.done()  # nothing for it yet: the poll is held
    job = image_job(f"{me}-j1", me)
    began = time.monotonic()
    await platform.put_job(job)
    listed = await asyncio.wait_for(waiting, 5)
    assert time.monotonic() - began < 1.0
    assert listed.jobs == (job,) and listed.version != start.version
    # The same job put again is one job: the version stays, and a poll on it is held.
    await platform.put_job(job)
    again = await client.jobs(me, since=-1, wait=0)
    assert again == listed
    began = time.monotonic()
    assert await client.jobs(me, since=listed.version, wait=0.5) == listed
    assert time.monotonic() - began >= 0.4
    # Other content replaces it; another host's list is not this one's.
    await platform.put_job(image_job(job.job_id, me, rate=1 << 20))
    changed = await client.jobs(me, since=listed.version, wait=5)
    assert changed.version != listed.version and [j.rate for j in changed.jobs] == [1 << 20]
    with pytest.raises(JobRefused) as moved:
        await platform.put_job(image_job(job.job_id, other))
    assert moved.value.status == 409


async def test_cancel_progress_and_forget(supernode: str, http: httpx.AsyncClient) -> None:
    platform = OperatorClient(supernode, http, OPERATOR_TOKEN)
    client, me = await host(http, supernode, "cancel-a")
    running, done = f"{me}-running", f"{me}-done"
    file_job = Job(done, "task-8", me, "file", file=FileSpec("http://files.example/f", "/srv/f"))
    await platform.put_job(image_job(running, me))
    await platform.put_job(file_job)
    listed = await client.jobs(me, since=-1, wait=0)
    assert {j.job_id for j in listed.jobs} == {running, done}
    await client.post_job_progress(me, ProgressReport((
        JobProgress(running, "", "running", bytes_done=10, bytes_total=100),
        JobProgress(done, "someone-else", "succeeded", bytes_done=5, bytes_total=5, digest="sha256:" + "a" * 64),
    )))
    mine = {p.job_id: p for p in (await platform.list_job_progress()).progress if p.host_id == me}
    assert {job_id: (p.state, p.bytes_done) for job_id, p in mine.items()} == {
        running: ("running", 10), done: ("succeeded", 5)
    }
    # The supernode says whose progress it is, not the host.
    assert {p.host_id for p in mine.values()} == {me}

    # Cancelled while running: off the host's list at its next poll, its progress kept for the host's `stopped`.
    await platform.cancel_job(running)
    after = await client.jobs(me, since=listed.version, wait=5)
    assert [j.job_id for j in after.jobs] == [done]
    await client.post_job_progress(me, ProgressReport((JobProgress(running, "", "stopped", bytes_done=20),)))
    states = {p.job_id: p.state for p in (await platform.list_job_progress()).progress}
    assert states[running] == "stopped" and states[done] == "succeeded"
    # Deleted once final, the supernode forgets it; a job it does not hold is cancelled already.
    await platform.cancel_job(running)
    await platform.cancel_job(done)
    left = {p.job_id for p in (await platform.list_job_progress()).progress}
    assert running not in left and done not in left
    assert (await client.jobs(me, since=after.version, wait=5)).jobs == ()
    await platform.cancel_job(running)
    response = await http.delete(supernode + routes.CANCEL_JOB.url(job_id=running), headers=operator_headers())
    assert response.status_code == 404 and error_of(response) == "no such job"


async def test_a_host_reads_and_reports_its_own_jobs_only(supernode: str, http: httpx.AsyncClient) -> None:
    platform = OperatorClient(supernode, http, OPERATOR_TOKEN)
    alice, a = await host(http, supernode, "own-a")
    bob, b = await host(http, supernode, "own-b")
    await platform.put_job(image_job(f"{b}-secret", b))
    # Alice's credential does not open Bob's list, nor does none.
    for headers in (alice.headers, JOIN):
        response = await http.get(supernode + routes.HOST_JOBS.url(peer_id=b), headers=headers)
        assert response.status_code == 403 and "credential" in error_of(response)
    response = await http.get(supernode + routes.HOST_JOBS.url(peer_id=b), headers=bob.headers)
    assert response.status_code == 200 and [j["job_id"] for j in response.json()["jobs"]] == [f"{b}-secret"]
    # Nor may Alice report on Bob's job, in her own name or in his; nothing of it is recorded.
    forged = ProgressReport((JobProgress(f"{b}-secret", b, "failed", error="forged"),)).to_json()
    response = await http.post(supernode + routes.JOB_PROGRESS.url(peer_id=a), json=forged, headers=alice.headers)
    assert response.status_code == 403 and "not a job of host" in error_of(response)
    response = await http.post(supernode + routes.JOB_PROGRESS.url(peer_id=b), json=forged, headers=alice.headers)
    assert response.status_code == 403 and "credential" in error_of(response)
    assert f"{b}-secret" not in {p.job_id for p in (await platform.list_job_progress()).progress}
    # Progress for a job the supernode does not hold (forgotten) is taken and dropped.
    await alice.post_job_progress(a, ProgressReport((JobProgress(f"{a}-gone", "", "succeeded"),)))
    assert f"{a}-gone" not in {p.job_id for p in (await platform.list_job_progress()).progress}
    # An unknown host registers first, as for a heartbeat.
    response = await http.get(supernode + routes.HOST_JOBS.url(peer_id="nobody"), headers=JOIN)
    assert response.status_code == 410


async def test_the_platform_routes_take_the_operators_token(supernode: str, http: httpx.AsyncClient) -> None:
    job = image_job("token-job", peer_id("token-a"))
    alice, _ = await host(http, supernode, "token-a")
    calls: list[tuple[str, str, Any]] = [
        ("PUT", routes.PUT_JOB.url(job_id=job.job_id), job.to_json()),
        ("DELETE", routes.CANCEL_JOB.url(job_id=job.job_id), None),
        ("GET", routes.LIST_JOB_PROGRESS.url(), None),
    ]
    refusals = [
        ({}, 401),  # no token at all
        ({"Authorization": "Bearer wrong"}, 401),  # a wrong operators' token is no join token either
        (JOIN, 403),  # a cluster member is no operator
        ({**JOIN, **alice.headers}, 403),  # nor is a registered host
        ({**JOIN, "Authorization": f"Bearer {OPERATOR_TOKEN}x"}, 403),
    ]
    for method, path, body in calls:
        for headers, status in refusals:
            response = await http.request(method, supernode + path, json=body, headers=headers)
            assert response.status_code == status, (method, headers)
            error_of(response)
    platform = OperatorClient(supernode, http, OPERATOR_TOKEN)
    assert job.job_id not in {p.job_id for p in (await platform.list_job_progress()).progress}
    with pytest.raises(OperatorRefused):
        await OperatorClient(supernode, http, "wrong").list_job_progress()
    listed = await alice.jobs(peer_id("token-a"), since=-1, wait=0)
    assert listed.jobs == ()


async def test_bad_bodies_and_queries_are_answered_400_with_the_reason(supernode: str, http: httpx.AsyncClient) -> None:
    alice, a = await host(http, supernode, "bad-a")
    put = supernode + routes.PUT_JOB.url(job_id="bad-1")
    good = image_job("bad-1", a).to_json()
    bad_puts: list[tuple[Any, str]] = [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        ({**good, "kind": "tarball"}, "'kind' must be one of image, file"),
        ({**good, "kind": "file"}, "'image' or 'file'"),
        ({**good, "job_id": "bad-2"}, "not the one in the path"),
        ({**good, "host_id": 7}, "'host_id'"),
        ({**good, "rate": -1}, "'rate'"),
        ({**good, "rate": True}, "'rate'"),
        ({**good, "deadline": "soon"}, "'deadline'"),
        ({**good, "image": {"reference": "x", "platforms": "linux"}}, "platforms"),
        ({**good, "credential": {"username": "u"}}, "'password'"),
        ({**good, "task_id": "t" * 129}, "'task_id'"),
        ({**good, "dry_run": "yes"}, "'dry_run'"),
    ]
    for body, reason in bad_puts:
        raw = {"content": body} if isinstance(body, bytes) else {"json": body}
        response = await http.put(put, headers=operator_headers(), **raw)
        assert response.status_code == 400 and reason in error_of(response), (body, response.text)
    # The job's id may be left to the path.
    del good["job_id"]
    response = await http.put(put, json=good, headers=operator_headers())
    assert response.status_code == 204
    jobs = supernode + routes.HOST_JOBS.url(peer_id=a)
    for query in ({"since": "x"}, {"wait": "soon"}):
        response = await http.get(jobs, params=query, headers={**JOIN, **alice.headers})
        assert response.status_code == 400 and "'since' and 'wait' must be numbers" in error_of(response)
    for wait in ("nan", "-5", "inf"):
        # No wait, or the supernode's longest: never an error, never forever (its list has changed since -1).
        response = await http.get(jobs, params={"since": "-1", "wait": wait}, headers={**JOIN, **alice.headers})
        assert response.status_code == 200 and [j["job_id"] for j in response.json()["jobs"]] == ["bad-1"]
    progress = supernode + routes.JOB_PROGRESS.url(peer_id=a)
    bad_reports: list[tuple[Any, str]] = [
        (b"\xff\xfe", "not JSON"),
        ({}, "'progress' must be a list of 1 to 256"),
        ({"progress": []}, "1 to 256"),
        ({"progress": [{"job_id": "bad-1", "state": "exploded"}]}, "'state' must be one of"),
        ({"progress": [{"job_id": "bad-1", "state": "running", "bytes_done": "lots"}]}, "'bytes_done'"),
        ({"progress": [{"job_id": "bad-1", "state": "running", "blobs": [{"digest": 1}]}]}, "'digest'"),
    ]
    for body, reason in bad_reports:
        raw = {"content": body} if isinstance(body, bytes) else {"json": body}
        response = await http.post(progress, headers={**JOIN, **alice.headers}, **raw)
        assert response.status_code == 400 and reason in error_of(response), (body, response.text)


async def test_a_hosts_list_is_bounded(supernode: str, http: httpx.AsyncClient) -> None:
    platform = OperatorClient(supernode, http, OPERATOR_TOKEN)
    _, me = await host(http, supernode, "bounded-a")
    for start in range(0, 1024, 64):
        await asyncio.gather(*(platform.put_job(image_job(f"{me}-{i}", me)) for i in range(start, start + 64)))
    with pytest.raises(JobRefused) as full:
        await platform.put_job(image_job(f"{me}-1024", me))
    assert full.value.status == 429 and "1024 jobs" in str(full.value)
    # Putting a job it holds again still works, and a cancel makes room.
    await platform.put_job(image_job(f"{me}-0", me, rate=5))
    await platform.cancel_job(f"{me}-0")
    await platform.put_job(image_job(f"{me}-1024", me))
    for i in range(1, 1025):
        await platform.cancel_job(f"{me}-{i}")


def test_a_waiting_poll_is_answered_when_the_supernode_stops(tmp_path: Path) -> None:
    cluster = start_supernode(tmp_path / "stopping")
    try:
        with httpx.Client(timeout=30.0, trust_env=False) as http:
            registered = http.post(
                cluster.supernode_url + routes.REGISTER.url(), json=register_body("stop-a"), headers=JOIN
            )
            registered.raise_for_status()
            headers = {**JOIN, **credential_headers(peer_id("stop-a"), registered.json()["credential"])}
            url = cluster.supernode_url + routes.HOST_JOBS.url(peer_id=peer_id("stop-a"))
            version = http.get(url, params={"since": "-1"}, headers=headers).json()["version"]
            polled: list[httpx.Response] = []

            def held_poll() -> None:
                polled.append(http.get(url, params={"since": str(version), "wait": "25"}, headers=headers))

            poll = threading.Thread(target=held_poll)
            poll.start()
            time.sleep(1.0)
            assert poll.is_alive()  # held
            began = time.monotonic()
            assert cluster.supernode is not None
            cluster.supernode.stop()
            poll.join(10)
            assert not poll.is_alive() and time.monotonic() - began < 5
        assert polled[0].status_code == 503 and "stopping" in error_of(polled[0])
    finally:
        cluster.stop()


async def test_a_supernode_that_does_not_answer_is_unavailable_to_the_platform(http: httpx.AsyncClient) -> None:
    with pytest.raises(SupernodeUnavailable, match="unreachable"):
        await OperatorClient(NO_UPSTREAM, http, OPERATOR_TOKEN).list_job_progress()
