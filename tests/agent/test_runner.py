"""The agent's reconciling of a host's job list with what runs, and the poller's posting, against an in-process job
source that holds the list and keeps what is posted (the network is not the point here: tests/agent/test_jobs.py
runs the same through real supernode and peer processes)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

from agent.config import AgentConfig
from agent.failure import JobFailed
from agent.poller import JobPoller, batches
from agent.progress import JobTracker
from agent.runner import CANCELLED, JobRunner
from supernode.client import SupernodeUnavailable
from supernode.jobs import BlobProgress, FileSpec, Job, JobList, JobProgress, ProgressReport


def job(job_id: str, deadline: float = 0.0) -> Job:
    return Job(job_id, "task", "host", "file", file=FileSpec("http://o.test/f", "/tmp/f"), deadline=deadline)


class Work:
    """A job's work that runs until told how to end; counts the runs, and how many run at once."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.running = 0
        self.most_at_once = 0
        self.release: dict[str, asyncio.Future[str]] = {}

    async def __call__(self, job: Job, tracker: JobTracker) -> None:
        self.started.append(job.job_id)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        future = self.release[job.job_id] = asyncio.get_running_loop().create_future()
        try:
            outcome = await future
        finally:
            # Winding down takes a moment, as a download being cancelled does.
            await asyncio.shield(asyncio.sleep(0.05))
            self.running -= 1
        if outcome != "ok":
            raise JobFailed(outcome)

    def end(self, job_id: str, outcome: str = "ok") -> None:
        self.release[job_id].set_result(outcome)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def state(runner: JobRunner, job_id: str) -> str:
    progress = runner.progress_of(job_id)
    return progress.state if progress is not None else "unknown"


async def test_a_new_job_starts_once_and_one_gone_from_the_list_is_stopped() -> None:
    work = Work()
    runner = JobRunner(work)
    runner.reconcile([job("a")])
    runner.reconcile([job("a")])
    await until(lambda: work.started == ["a"])
    assert state(runner, "a") == "running"
    began = time.monotonic()
    runner.reconcile([])
    await until(lambda: state(runner, "a") == "stopped")
    assert time.monotonic() - began < 1.0
    progress = runner.progress_of("a")
    assert progress is not None and progress.error == CANCELLED and progress.finished_at > 0
    assert work.started == ["a"]
    await runner.close()


async def test_a_job_put_back_while_its_cancelled_run_winds_down_never_runs_twice_at_once() -> None:
    work = Work()
    runner = JobRunner(work)
    runner.reconcile([job("a")])
    await until(lambda: work.started == ["a"])
    runner.reconcile([])
    runner.reconcile([job("a")])
    await until(lambda: work.started == ["a", "a"])
    assert work.most_at_once == 1
    work.end("a")
    await until(lambda: state(runner, "a") == "succeeded")
    await runner.close()


async def test_a_finished_job_listed_again_is_not_redone_but_its_end_is_posted_again() -> None:
    work = Work()
    runner = JobRunner(work)
    runner.reconcile([job("a"), job("b")])
    await until(lambda: sorted(work.started) == ["a", "b"])
    work.end("a")
    work.end("b", "the origin said 404")
    await until(lambda: state(runner, "a") == "succeeded" and state(runner, "b") == "failed")
    assert runner.progress_of("b") is not None and runner.progress_of("b").error == "the origin said 404"  # type: ignore[union-attr]
    runner.posted(runner.due())
    assert runner.due() == []
    # Still listed: nothing to tell again. Gone and back (the supernode restarted): told again, not run again.
    runner.reconcile([job("a"), job("b")])
    assert runner.due() == []
    runner.reconcile([])
    runner.reconcile([job("a"), job("b")])
    assert sorted(p.job_id for p in runner.due()) == ["a", "b"]
    runner.posted(runner.due())
    # The supernode was away (it may have restarted, forgetting all): the same list is told again.
    runner.supernode_lost()
    runner.reconcile([job("a"), job("b")])
    assert sorted(p.job_id for p in runner.due()) == ["a", "b"]
    assert sorted(work.started) == ["a", "b"]
    await runner.close()


async def test_past_its_deadline_a_job_fails_with_a_clear_error() -> None:
    work = Work()
    runner = JobRunner(work)
    runner.reconcile([job("late", deadline=time.time() - 1), job("slow", deadline=time.time() + 0.3)])
    await until(lambda: state(runner, "late") == "failed" and state(runner, "slow") == "failed")
    late, slow = runner.progress_of("late"), runner.progress_of("slow")
    assert late is not None and late.error == "the job's deadline passed before it started"
    assert slow is not None and slow.error.startswith("the job's deadline passed")
    assert work.started == ["slow"]
    await runner.close()


class JobSourceInProcess:
    """The supernode's side of the channel, in process: the host's list with its version, a long-poll that waits
    for it to change, and the reports received; down (refusing every call) while `down` is set."""

    def __init__(self) -> None:
        self.listing = JobList(0)
        self.changed = asyncio.Condition()
        self.reports: list[ProgressReport] = []
        self.down = False
        self.polls = 0

    async def put(self, *jobs: Job) -> None:
        async with self.changed:
            self.listing = JobList(self.listing.version + 1, jobs)
            self.changed.notify_all()

    async def jobs(self, peer_id: str, since: int, wait: float) -> JobList:
        self.polls += 1
        if self.down:
            raise SupernodeUnavailable("supernode unreachable: in-process source is down")
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: self.listing.version != since), wait)
        return self.listing

    async def post_job_progress(self, peer_id: str, report: ProgressReport) -> None:
        if self.down:
            raise SupernodeUnavailable("supernode unreachable: in-process source is down")
        self.reports.append(report)

    def last(self, job_id: str) -> JobProgress | None:
        found = [p for report in self.reports for p in report.progress if p.job_id == job_id]
        return found[-1] if found else None


async def test_the_poller_runs_what_the_source_lists_and_posts_each_state_change_batched() -> None:
    source = JobSourceInProcess()
    work = Work()
    runner = JobRunner(work)
    poller = JobPoller(source, lambda: "p1", runner, AgentConfig(poll_wait=2.0, progress_interval=0.5))
    task = asyncio.create_task(poller.run())
    try:
        await source.put(job("a"), job("b"))
        await until(lambda: sorted(work.started) == ["a", "b"])
        await until(lambda: any(len(r.progress) == 2 for r in source.reports))
        work.end("a")
        await until(lambda: getattr(source.last("a"), "state", "") == "succeeded", timeout=2.0)
        # Cancelled within a second or two of leaving the list, and told so.
        began = time.monotonic()
        await source.put(job("a"))
        await until(lambda: getattr(source.last("b"), "state", "") == "stopped")
        assert time.monotonic() - began < 2.0
        # Down for a while: no run is lost, and what happened meanwhile is posted once it is back.
        source.down = True
        await source.put(job("a"), job("c"))
        await asyncio.sleep(0.3)
        source.down = False
        await until(lambda: "c" in work.started, timeout=10.0)
        work.end("c", "no such file")
        await until(lambda: getattr(source.last("c"), "error", "") == "no such file", timeout=10.0)
        assert work.started.count("a") == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await runner.close()


def test_reports_are_cut_to_what_the_supernode_takes_in_one_body() -> None:
    blob = BlobProgress("sha256:" + "b" * 64, size=1)
    big = [JobProgress(f"j{i}", "host", "running", blobs=(blob,) * 1000) for i in range(5)]
    small = [JobProgress(f"s{i}", "host", "running") for i in range(600)]
    for due in (big, small):
        cut = batches(due)
        assert [p for batch in cut for p in batch] == due
        assert all(len(batch) <= 256 and len(json.dumps(ProgressReport(tuple(batch)).to_json())) < 1 << 20
                   for batch in cut)
    assert len(batches(big)) > 1 and len(batches(small)) == 3
