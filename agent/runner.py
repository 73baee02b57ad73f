"""Which jobs run on this host: the list the supernode gives is reconciled with what runs here.

A job new to the list starts; one that left it is cancelled (its task within moments, its state `stopped`); a job
never runs twice at once (one put back while its cancelled run winds down waits for that run to end); a job that
finished (`succeeded` or `failed`) and is listed again is not redone: its final progress is posted again. Past its
deadline a job fails. Every task here is owned by the runner and cancelled by `close()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from cachetools import LRUCache

from supernode.jobs import Job, JobProgress

from .failure import JobFailed
from .progress import JobTracker

log = logging.getLogger(__name__)

# What a job does: returns once done; raises JobFailed (or anything else: a failure all the same).
JobWork = Callable[[Job, JobTracker], Awaitable[None]]
CANCELLED = "the job was cancelled"


@dataclass(slots=True)
class _Run:
    tracker: JobTracker
    task: asyncio.Task[None]

    @property
    def cancelled(self) -> bool:
        return self.tracker.cancelled


class JobRunner:
    def __init__(self, work: JobWork, *, remembered: int = 1024) -> None:
        self.work = work
        # Set at each change of a job's state, so its progress is posted at once.
        self.changed = asyncio.Event()
        self._runs: dict[str, _Run] = {}
        self._finished: LRUCache[str, JobTracker] = LRUCache(maxsize=remembered)
        self._posted: LRUCache[str, JobProgress] = LRUCache(maxsize=remembered)
        self._listed: set[str] = set()

    # --- the list ----------------------------------------------------------------------------------

    def reconcile(self, jobs: Iterable[Job]) -> None:
        wanted = {job.job_id: job for job in jobs}
        for job_id, leaving in self._runs.items():
            if job_id not in wanted and not leaving.cancelled:
                leaving.tracker.cancelled = True
                leaving.task.cancel()
        for job_id, job in wanted.items():
            run = self._runs.get(job_id)
            if run is not None and not run.cancelled:
                continue
            finished = self._finished.get(job_id)
            if run is None and finished is not None and finished.state in ("succeeded", "failed"):
                if job_id not in self._listed:
                    # Put again (the supernode restarted, or the platform asks): its end is told again, not redone.
                    self._posted.pop(job_id, None)
                    self.changed.set()
                continue
            self._start(job, run.task if run is not None else None)
        self._listed = set(wanted)

    def supernode_lost(self) -> None:
        """The supernode could not be asked: it may come back restarted, without the jobs and progress it held.
        Whatever it lists next is taken as new (a finished job's end is told again), and the running jobs'
        progress is posted afresh."""
        self._listed.clear()
        for job_id in self._runs:
            self._posted.pop(job_id, None)

    def _start(self, job: Job, after: asyncio.Task[None] | None) -> None:
        # One line per run: how an operator (and tests/manager/test_tasks_ha.py) sees that a job ran once.
        log.info("job %s (task %s) started", job.job_id[:80], job.task_id[:40])
        tracker = JobTracker(job, on_change=self.changed.set)
        self._finished.pop(job.job_id, None)
        self._posted.pop(job.job_id, None)
        task = asyncio.create_task(self._run(tracker, after), name=f"job-{job.job_id[:40]}")
        run = self._runs[job.job_id] = _Run(tracker, task)
        task.add_done_callback(lambda _: self._ended(run))
        self.changed.set()

    def _ended(self, run: _Run) -> None:
        job_id = run.tracker.job.job_id
        if self._runs.get(job_id) is run:
            del self._runs[job_id]
        if run.tracker.final_state:
            self._finished[job_id] = run.tracker

    async def _run(self, tracker: JobTracker, after: asyncio.Task[None] | None) -> None:
        job = tracker.job
        try:
            if after is not None:
                # The same job's cancelled run: never two at once.
                await asyncio.wait([after])
            if job.deadline and time.time() >= job.deadline:
                tracker.finish("failed", "the job's deadline passed before it started")
                return
            tracker.start()
            left = job.deadline - time.time() if job.deadline else None
            async with asyncio.timeout(left) as limit:
                try:
                    await self.work(job, tracker)
                except TimeoutError:
                    if limit.expired():
                        raise
                    raise JobFailed("timed out") from None
        except asyncio.CancelledError:
            if tracker.cancelled:
                tracker.finish("stopped", CANCELLED)
                return  # the cancel was ours: the job's end, told like any other
            raise
        except TimeoutError:
            tracker.finish("failed", f"the job's deadline passed {time.time() - tracker.started_at:.0f} s after it "
                                     "started, before it finished")
        except JobFailed as exc:
            tracker.finish("failed", str(exc))
        except Exception as exc:
            log.exception("job %s failed", job.job_id)
            tracker.finish("failed", f"internal error: {type(exc).__name__}: {exc}")
        else:
            tracker.finish("succeeded")

    # --- progress ----------------------------------------------------------------------------------

    def due(self) -> list[JobProgress]:
        """The progress of every job that changed since it was last posted (a finished one's last, until posted)."""
        trackers = [run.tracker for run in self._runs.values()]
        trackers += [t for job_id, t in self._finished.items() if job_id not in self._runs]
        out = []
        for tracker in trackers:
            progress = tracker.snapshot()
            if self._posted.get(tracker.job.job_id) != progress:
                out.append(progress)
        return out

    def posted(self, progress: Iterable[JobProgress]) -> None:
        for item in progress:
            self._posted[item.job_id] = item

    def progress_of(self, job_id: str) -> JobProgress | None:
        run = self._runs.get(job_id)
        tracker = run.tracker if run is not None else self._finished.get(job_id)
        return tracker.snapshot() if tracker is not None else None

    @property
    def running(self) -> list[str]:
        return [job_id for job_id, run in self._runs.items() if not run.tracker.final_state]

    async def close(self) -> None:
        runs = list(self._runs.values())
        for run in runs:
            run.task.cancel()
        for run in runs:
            with contextlib.suppress(BaseException):
                await run.task
