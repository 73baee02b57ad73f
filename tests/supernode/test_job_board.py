"""The job board's rules (supernode/job_board.py), as plain state with a clock of the test's own."""

from __future__ import annotations

import asyncio
import time

import pytest

from supernode.job_board import JobBoard, JobBoardFull, JobMoved, NotYourJob
from supernode.jobs import BlobProgress, FileSpec, ImageSpec, Job, JobProgress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def image_job(job_id: str, host_id: str = "host-a", reference: str = "team/app:1", rate: int = 0) -> Job:
    return Job(job_id, "task-1", host_id, "image", image=ImageSpec(reference), rate=rate)


def board(max_per_host: int = 1024, max_total: int = 100_000, max_blobs: int = 500_000) -> tuple[JobBoard, Clock]:
    clock = Clock()
    jobs = JobBoard(max_per_host=max_per_host, max_total=max_total, max_blobs=max_blobs, clock=clock, first_version=100)
    return jobs, clock


def ids(board: JobBoard, host_id: str) -> list[str]:
    return [job.job_id for job in board.jobs_for(host_id).jobs]


def test_put_lists_a_job_on_its_host_only_and_the_same_put_again_changes_nothing() -> None:
    jobs, _ = board()
    assert jobs.jobs_for("host-a").version == 100
    assert jobs.put(image_job("j1")) is True
    first = jobs.jobs_for("host-a")
    assert first.version > 100 and first.jobs == (image_job("j1"),)
    assert jobs.jobs_for("host-b").jobs == ()
    assert jobs.put(image_job("j1")) is False
    assert jobs.jobs_for("host-a") == first
    # Other content replaces the job in place, keeping its progress: the host goes on with it.
    jobs.record("host-a", [JobProgress("j1", "", "running", bytes_done=5)])
    assert jobs.put(image_job("j1", rate=1000)) is True
    changed = jobs.jobs_for("host-a")
    assert changed.version > first.version and changed.jobs == (image_job("j1", rate=1000),)
    assert [p.bytes_done for p in jobs.progress()] == [5]


def test_a_job_does_not_move_to_another_host() -> None:
    jobs, _ = board()
    jobs.put(image_job("j1", "host-a"))
    with pytest.raises(JobMoved, match="does not move"):
        jobs.put(image_job("j1", "host-b"))
    assert ids(jobs, "host-a") == ["j1"] and ids(jobs, "host-b") == []


def test_cancel_takes_the_job_off_the_list_and_keeps_its_progress_until_forget() -> None:
    jobs, _ = board()
    jobs.put(image_job("j1"))
    jobs.put(image_job("j2"))
    jobs.record("host-a", [JobProgress("j1", "forged-host", "running")])
    before = jobs.jobs_for("host-a").version
    assert jobs.cancel("j1") is True
    after = jobs.jobs_for("host-a")
    assert after.version > before and ids(jobs, "host-a") == ["j2"]
    # The host's word that it stopped is still taken, its host id filled in by the board.
    jobs.record("host-a", [JobProgress("j1", "", "stopped")])
    assert [(p.job_id, p.host_id, p.state) for p in jobs.progress()] == [("j1", "host-a", "stopped")]
    assert jobs.cancel("j1") is True and jobs.jobs_for("host-a") == after  # cancelled already: no change
    jobs.forget("j1")
    assert jobs.progress() == [] and jobs.cancel("j1") is False and jobs.cancel("never") is False


def test_withdraw_forgets_a_job_whose_progress_is_final_only() -> None:
    jobs, _ = board()
    jobs.put(image_job("running"))
    jobs.put(image_job("done"))
    jobs.record("host-a", [JobProgress("running", "", "running"), JobProgress("done", "", "succeeded")])
    assert jobs.withdraw("done") is True and jobs.withdraw("running") is True
    assert ids(jobs, "host-a") == []
    assert [(p.job_id, p.state) for p in jobs.progress()] == [("running", "running")]
    jobs.record("host-a", [JobProgress("running", "", "stopped")])
    assert jobs.withdraw("running") is True
    assert jobs.progress() == [] and jobs.withdraw("running") is False


def test_a_cancelled_job_put_again_is_listed_anew_without_its_old_progress() -> None:
    jobs, _ = board()
    jobs.put(image_job("j1"))
    jobs.record("host-a", [JobProgress("j1", "", "stopped")])
    jobs.cancel("j1")
    assert jobs.put(image_job("j1")) is True
    assert ids(jobs, "host-a") == ["j1"] and jobs.progress() == []


def test_progress_of_another_hosts_job_is_refused_whole_and_of_an_unknown_job_dropped() -> None:
    jobs, _ = board()
    jobs.put(image_job("mine", "host-a"))
    jobs.put(image_job("theirs", "host-b"))
    with pytest.raises(NotYourJob, match="not a job of host"):
        jobs.record("host-a", [JobProgress("mine", "", "running"), JobProgress("theirs", "", "failed")])
    assert jobs.progress() == []
    jobs.record("host-a", [JobProgress("mine", "", "running"), JobProgress("forgotten", "", "succeeded")])
    assert [p.job_id for p in jobs.progress()] == ["mine"]


def test_versions_never_go_back_when_a_list_is_emptied_and_filled_again() -> None:
    jobs, _ = board()
    seen = [jobs.jobs_for("host-a").version]
    for round_ in range(3):
        jobs.put(image_job(f"j{round_}"))
        seen.append(jobs.jobs_for("host-a").version)
        jobs.put(image_job("other", "host-b"))  # another host's changes move the counter on meanwhile
        jobs.forget("other")
        jobs.cancel(f"j{round_}")
        seen.append(jobs.jobs_for("host-a").version)
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert jobs.jobs_for("host-a").jobs == ()


def test_bounds_refuse_and_change_nothing() -> None:
    jobs, _ = board(max_per_host=2, max_total=3, max_blobs=3)
    jobs.put(image_job("a1", "host-a"))
    jobs.put(image_job("a2", "host-a"))
    with pytest.raises(JobBoardFull, match="host 'host-a' has 2 jobs"):
        jobs.put(image_job("a3", "host-a"))
    jobs.put(image_job("a1", "host-a", rate=5))  # replacing a listed job takes no room
    jobs.put(image_job("b1", "host-b"))
    with pytest.raises(JobBoardFull, match="holds 3 jobs"):
        jobs.put(image_job("b2", "host-b"))
    # Cancelled jobs are held too, until forgotten.
    jobs.cancel("b1")
    with pytest.raises(JobBoardFull):
        jobs.put(image_job("b2", "host-b"))
    jobs.forget("b1")
    jobs.put(image_job("b2", "host-b"))
    blobs = tuple(BlobProgress(f"sha256:{i}") for i in range(2))
    jobs.record("host-a", [JobProgress("a1", "", "running", blobs=blobs)])
    with pytest.raises(JobBoardFull, match="3 blobs"):
        jobs.record("host-a", [JobProgress("a2", "", "running", blobs=blobs)])
    assert [p.job_id for p in jobs.progress()] == ["a1"]
    jobs.record("host-a", [JobProgress("a1", "", "running", blobs=blobs[:1]), JobProgress("a2", "", "running")])
    jobs.record("host-a", [JobProgress("a2", "", "running", blobs=blobs)])  # the room a1 gave back
    assert ids(jobs, "host-a") == ["a1", "a2"] and ids(jobs, "host-b") == ["b2"]


def test_sweep_forgets_jobs_cancelled_longer_ago_than_retain() -> None:
    clock = Clock()
    jobs = JobBoard(clock=clock, retain=60.0)
    jobs.put(Job("f1", "t", "host-a", "file", file=FileSpec("http://x/f", "/tmp/f")))
    jobs.put(image_job("j2"))
    jobs.record("host-a", [JobProgress("f1", "", "running"), JobProgress("j2", "", "running")])
    jobs.cancel("f1")
    clock.now += 30
    jobs.cancel("j2")
    assert jobs.sweep() == 0
    clock.now += 31
    assert jobs.sweep() == 1 and [p.job_id for p in jobs.progress()] == ["j2"]
    clock.now += 30
    assert jobs.sweep() == 1 and jobs.progress() == []


async def test_a_waiting_poll_returns_at_the_put_and_at_the_wait_and_at_stop() -> None:
    jobs, _ = board()
    start = jobs.jobs_for("host-a")
    assert await jobs.wait_jobs("host-a", -1, 5.0) == start  # another version: at once
    waiting = asyncio.ensure_future(jobs.wait_jobs("host-a", start.version, 5.0))
    other = asyncio.ensure_future(jobs.wait_jobs("host-b", start.version, 5.0))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    began = time.monotonic()
    jobs.put(image_job("j1"))
    answer = await asyncio.wait_for(waiting, 1.0)
    assert time.monotonic() - began < 0.5 and [job.job_id for job in answer.jobs] == ["j1"]
    assert not other.done()  # another host's change wakes nobody else
    began = time.monotonic()
    assert (await jobs.wait_jobs("host-a", answer.version, 0.2)) == answer
    assert 0.15 < time.monotonic() - began < 1.0
    # NaN or a negative wait: no wait.
    assert await asyncio.wait_for(jobs.wait_jobs("host-a", answer.version, float("nan")), 0.1) == answer
    assert await asyncio.wait_for(jobs.wait_jobs("host-a", answer.version, -1.0), 0.1) == answer
    jobs.stop()
    assert (await asyncio.wait_for(other, 0.5)).jobs == ()
    assert await asyncio.wait_for(jobs.wait_jobs("host-a", answer.version, 5.0), 0.1) == answer


async def test_a_long_wait_is_capped() -> None:
    jobs = JobBoard(max_wait=0.2)
    version = jobs.jobs_for("host-a").version
    began = time.monotonic()
    await asyncio.wait_for(jobs.wait_jobs("host-a", version, 3600.0), 2.0)
    assert time.monotonic() - began < 1.0
