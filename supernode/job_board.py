"""The jobs the supernode holds for its hosts, and their last progress (the wire types: supernode/jobs.py).

Plain synchronous state, as the scheduler's is, and one asyncio wake-up per waiting long-poll, as the swarm
notifier's (supernode/notifier.py): call it from the supernode's event loop only (the platform hosted in the same
process does, damselfly/cli.py). The supernode keeps it in memory only: the platform puts its jobs again after a
restart (supernode/jobs.py).

The rules:
- `put` lists a job on its host's list. The same job put again (equal content) changes nothing; a job put with other
  content replaces it in place and keeps its progress (the host goes on with it); a job put again after it was
  cancelled is listed anew and its old progress dropped. A job is one host's for as long as the board holds it:
  put for another host it is refused (`JobMoved`), so that a host's report never races a move.
- `cancel` takes a job off its host's list (the host stops it) but keeps the job's last progress, and takes the
  host's later progress for it (its `stopped`), until `forget` or, for at most `retain` seconds after the cancel,
  `sweep`: a host that never says more does not hold memory forever.
- `withdraw` is `DELETE /api/v1/jobs/{job_id}`: `cancel`, then `forget` if the job's last progress is final (the
  platform has read it; nothing is left to wait for). A job withdrawn while it runs is kept until its host says it
  stopped, the platform reads that, and withdraws it again (or `retain` passes).
- `record` stores a host's progress: only for jobs put for that host (another host's job refuses the whole report,
  `NotYourJob`); progress for a job the board does not hold (forgotten, or from before a restart) is dropped.
- Each host's list has a version, which changes at every change of that list and never goes back, also when the
  list is emptied and filled again: versions are drawn from one counter for all hosts (started at the wall clock
  in milliseconds, so that a restarted supernode's go on forward), and a host without jobs reads the counter's value
  when a list was last emptied. A long-poll compares versions for equality only.
- Bounds: `max_per_host` jobs on one host's list, `max_total` jobs held (listed or cancelled), `max_blobs` blobs in
  all progress held; beyond them `put` and `record` raise `JobBoardFull` (answered 429) and change nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from .jobs import Job, JobList, JobProgress

MAX_WAIT = 30.0


class JobBoardFull(Exception):
    """A bound of the board would be passed: answered 429, nothing changed."""


class NotYourJob(Exception):
    """A host sent progress for a job put for another host: answered 403, nothing recorded."""


class JobMoved(Exception):
    """A job put again for another host than the one it was put for: answered 409, nothing changed."""


@dataclass(slots=True)
class _Held:
    job: Job
    listed: bool = True
    progress: JobProgress | None = None


class JobBoard:
    def __init__(
        self,
        *,
        max_per_host: int = 1024,
        max_total: int = 100_000,
        max_blobs: int = 500_000,
        max_wait: float = MAX_WAIT,
        retain: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        first_version: int | None = None,
    ) -> None:
        self.max_per_host = max_per_host
        self.max_total = max_total
        self.max_blobs = max_blobs
        self.max_wait = max_wait
        self.retain = retain
        self._clock = clock
        self._held: dict[str, _Held] = {}
        # Listed jobs by host, in the order they were put; a host is here only while its list is not empty.
        self._lists: dict[str, dict[str, Job]] = {}
        self._versions: dict[str, int] = {}
        self._counter = int(time.time() * 1000) if first_version is None else first_version
        # The version of every host without jobs.
        self._floor = self._counter
        # Cancelled jobs still held, oldest cancel first, with when they were cancelled.
        self._cancelled: dict[str, float] = {}
        self._blobs = 0
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._stopped = False

    # --- the platform's side ----------------------------------------------------------------------------

    def put(self, job: Job) -> bool:
        """List `job` on its host's list; False if it was listed already as it is (nothing changed)."""
        held = self._held.get(job.job_id)
        if held is not None and held.job.host_id != job.host_id:
            raise JobMoved(
                f"job {job.job_id[:80]!r} is host {held.job.host_id[:80]!r}'s: a job does not move, put a new one"
            )
        if held is not None and held.listed and held.job == job:
            return False
        in_place = held is not None and held.listed
        if held is None and len(self._held) >= self.max_total:
            raise JobBoardFull(f"the supernode holds {self.max_total} jobs, its most: put again later")
        if not in_place and len(self._lists.get(job.host_id, ())) >= self.max_per_host:
            raise JobBoardFull(f"host {job.host_id[:80]!r} has {self.max_per_host} jobs, its most")
        progress = held.progress if in_place and held is not None else None
        if held is not None and not in_place:
            self._drop_progress(held)
        self._cancelled.pop(job.job_id, None)
        self._held[job.job_id] = _Held(job, listed=True, progress=progress)
        self._lists.setdefault(job.host_id, {})[job.job_id] = job
        self._bump(job.host_id)
        return True

    def cancel(self, job_id: str) -> bool:
        """Take the job off its host's list, keeping its progress; False if the board does not hold it."""
        held = self._held.get(job_id)
        if held is None:
            return False
        if held.listed:
            held.listed = False
            self._unlist(held.job)
            self._cancelled[job_id] = self._clock()
        return True

    def forget(self, job_id: str) -> None:
        """Drop the job and its progress (off its host's list too, if it was still on it)."""
        held = self._held.pop(job_id, None)
        if held is None:
            return
        self._cancelled.pop(job_id, None)
        self._drop_progress(held)
        if held.listed:
            self._unlist(held.job)

    def withdraw(self, job_id: str) -> bool:
        """`DELETE /api/v1/jobs/{job_id}`: cancel, and forget once the job's last progress is final; False if the
        board does not hold it."""
        held = self._held.get(job_id)
        if not self.cancel(job_id):
            return False
        if held is not None and held.progress is not None and held.progress.final:
            self.forget(job_id)
        return True

    def progress(self) -> list[JobProgress]:
        """The last progress of every job held (listed or cancelled) that has any."""
        return [held.progress for held in self._held.values() if held.progress is not None]

    def sweep(self) -> int:
        """Forget the jobs cancelled more than `retain` seconds ago; how many."""
        horizon = self._clock() - self.retain
        old = []
        for job_id, cancelled_at in self._cancelled.items():
            if cancelled_at > horizon:
                break
            old.append(job_id)
        for job_id in old:
            self.forget(job_id)
        return len(old)

    # --- the host's side ----------------------------------------------------------------------------------

    def jobs_for(self, host_id: str) -> JobList:
        listed = self._lists.get(host_id)
        if not listed:
            return JobList(self._floor)
        return JobList(self._versions[host_id], tuple(listed.values()))

    async def wait_jobs(self, host_id: str, since: int, wait: float) -> JobList:
        """The host's list at once if its version is not `since`, else once it changes, `wait` seconds pass (at most
        `max_wait`), or the board stops."""
        current = self.jobs_for(host_id)
        # `> 0` is false for NaN too.
        wait = min(wait, self.max_wait) if wait > 0 else 0.0
        if current.version != since or self._stopped or wait <= 0:
            return current
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        waiters = self._waiters.setdefault(host_id, set())
        waiters.add(waiter)
        timer = loop.call_later(wait, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            waiters.discard(waiter)
            if not waiters and self._waiters.get(host_id) is waiters:
                del self._waiters[host_id]
        return self.jobs_for(host_id)

    def record(self, host_id: str, progress: Sequence[JobProgress]) -> None:
        """Store the host's progress of its jobs (with `host_id` filled in); all or nothing."""
        blobs = self._blobs
        latest: dict[str, JobProgress] = {}
        for item in progress:
            held = self._held.get(item.job_id)
            if held is None:
                continue  # forgotten, or never put since a restart: nobody reads it
            if held.job.host_id != host_id:
                raise NotYourJob(f"job {item.job_id[:80]!r} is not a job of host {host_id[:80]!r}")
            before = latest.get(item.job_id, held.progress)
            blobs += len(item.blobs) - (len(before.blobs) if before is not None else 0)
            latest[item.job_id] = replace(item, host_id=host_id)
        if blobs > self.max_blobs and blobs > self._blobs:
            raise JobBoardFull(f"the supernode holds the progress of {self.max_blobs} blobs, its most")
        for job_id, item in latest.items():
            self._held[job_id].progress = item
        self._blobs = blobs

    def stop(self) -> None:
        """The supernode is stopping: every long-poll returns now, and later ones at once."""
        self._stopped = True
        waiting, self._waiters = self._waiters, {}
        for waiters in waiting.values():
            for waiter in waiters:
                _wake(waiter)

    # --- inside -------------------------------------------------------------------------------------------

    def _unlist(self, job: Job) -> None:
        listed = self._lists.get(job.host_id)
        if listed is not None and listed.pop(job.job_id, None) is not None:
            self._bump(job.host_id)

    def _drop_progress(self, held: _Held) -> None:
        if held.progress is not None:
            self._blobs -= len(held.progress.blobs)
            held.progress = None

    def _bump(self, host_id: str) -> None:
        """The host's list changed: a new version, and its long-polls woken."""
        self._counter += 1
        if self._lists.get(host_id):
            self._versions[host_id] = self._counter
        else:
            self._lists.pop(host_id, None)
            self._versions.pop(host_id, None)
            self._floor = self._counter
        for waiter in self._waiters.pop(host_id, ()):
            _wake(waiter)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
