"""The task runner: the background loop (owned by ManagerApp, cancelled at its shutdown) that moves tasks along.

Each round (about a second, or at once when an endpoint wakes it):
1. read every job's last progress from the channel (manager/job_channel.py) and the hosts live now;
2. in one transaction: start pending tasks; store each host's progress (bytes, per blob); mark hosts done or failed;
   fail what passed its timeout; give jobs to at most `concurrency` hosts at once, live hosts only (a host down
   waits for its job until it is back or the task times out); finish tasks whose hosts are all done;
3. outside it: put the new jobs, and cancel every job whose last progress is stored or whose task is over (the
   supernode then forgets it).

The database is the only state that matters: at start every live job of a running task is put again (the same
job id, so the same job), and a job the supernode no longer reports is put again every `reput_every` seconds
(a supernode that restarted). Nothing is lost, nothing is run twice.

Endpoints that change a task (stop, retry, delete) hold `lock` for their transaction, so that a round and a write
of one manager never overwrite each other.

Several managers on one database (PostgreSQL) split the tasks by **lease**: each round first claims, in its own
transaction, the active tasks that are its own, that nobody holds, or whose holder's lease (`lease` seconds,
renewed every round) ran out, with one conditional UPDATE, so that of two managers racing for a task exactly one
gets it; then it moves only the tasks it holds. A manager that stops hands its tasks back; one that dies holds them
until its lease runs out, and another takes them over from where the database says they stood: its first round
puts their live jobs again under the same job ids, so nothing is done twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from supernode.jobs import FINAL_STATES, FileSpec, ImageSpec, Job, JobProgress, RegistryCredential

from .host_source import LiveHosts
from .hosts import HostBook
from .job_channel import ChannelUnavailable, JobChannel
from .models import RegistrySecret, Task, TaskEvent, TaskHost
from .secret_box import SecretBox, SecretUnreadable

log = logging.getLogger(__name__)
T = TypeVar("T")

RUNNER = "runner"
ACTIVE_TASK_STATES = ("pending", "running")
MAX_ERROR = 2000


def job_id_of(task_id: int, row_id: int, attempt: int) -> str:
    """Deterministic: the job put again after a restart is the same job; a retry is a new one."""
    return f"t{task_id}-h{row_id}-a{attempt}"


def event(session: AsyncSession, task_id: int, actor: str, what: str, detail: str = "") -> None:
    session.add(TaskEvent(task_id=task_id, at=time.time(), actor=actor[:64], what=what[:64], detail=detail[:2000]))


def failure_summary(rows: Sequence[TaskHost]) -> str:
    failed = [row for row in rows if row.state != "succeeded"]
    reasons = "; ".join(f"{row.host_id}: {row.error or row.state}" for row in failed)
    return f"{len(failed)} of {len(rows)} hosts did not succeed: {reasons}"[:MAX_ERROR]


@dataclass(frozen=True, slots=True)
class JobRef:
    job_id: str
    host_id: str


class TaskRunner:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], channel: JobChannel, book: HostBook,
                 box: SecretBox, *, interval: float = 1.0, call_timeout: float = 5.0,
                 reput_every: float = 15.0, lease: float = 15.0, owner: str = "") -> None:
        self.sessions = sessions
        # Who holds a task's lease: this process, unique among the managers of one database, and named so that an
        # operator reading the tasks table sees which host and process it is.
        self.owner = owner or f"{socket.gethostname()[:64]}:{os.getpid()}:{secrets.token_hex(4)}"
        self.lease = lease
        self.channel = channel
        self.book = book
        self.box = box
        self.interval = interval
        self.call_timeout = call_timeout
        self.reput_every = reput_every
        self.lock = asyncio.Lock()
        self._wake = asyncio.Event()
        # By job id: when it was last put (or seen in the progress); empty at start, so every live job is re-put.
        self._put_at: dict[str, float] = {}
        # The first round puts every live job again (the supernode may have lost it while we were down).
        self._resuming = True
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """End `run` after the round under way: not cancelled mid-transaction (ManagerApp cancels it only if that
        round outlasts its bound)."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            # Cleared before the round: a wake during it makes the next round come at once.
            self._wake.clear()
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception:
                # A database that failed a round, or a bug: said, and the next round tries again.
                log.warning("a task round failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)

    async def _bounded(self, call: Awaitable[T]) -> T:
        return await asyncio.wait_for(call, self.call_timeout)

    async def round(self) -> None:
        progress = await self._progress()
        try:
            live = await self._bounded(self.book.snapshot())
        except (TimeoutError, OSError):
            live = None
        await self._claim()
        async with self.lock, self.sessions.begin() as session:
            to_put, to_cancel = await self._step(session, progress, live)
        await self._put(to_put)
        self._resuming = False
        await self.cancel(to_cancel)

    async def _claim(self) -> None:
        """Hold (or keep holding) the active tasks that are ours or nobody's, or whose lease ran out."""
        now = time.time()
        claimable = (Task.state.in_(ACTIVE_TASK_STATES),
                     or_(Task.lease_owner == self.owner, Task.lease_owner == "", Task.lease_expires.is_(None),
                         Task.lease_expires < now))
        async with self.sessions.begin() as session:
            # Whose they were: a task taken from a manager whose lease ran out is said, in the log and the task's.
            was = {task_id: owner for task_id, owner in (await session.execute(
                select(Task.id, Task.lease_owner).where(*claimable)
                .where(Task.lease_owner != self.owner).where(Task.lease_owner != "")
            )).all()}
            held = set((await session.execute(
                update(Task).where(*claimable).values(lease_owner=self.owner, lease_expires=now + self.lease)
                .returning(Task.id)
            )).scalars())
            for task_id in sorted(held & was.keys()):
                log.info("task %d taken over from %s, whose lease ran out", task_id, was[task_id])
                event(session, task_id, RUNNER, "taken over", f"by {self.owner} from {was[task_id]}")

    async def release(self) -> None:
        """Hand our tasks back (a stop): another manager takes them at its next round, not after the lease."""
        async with self.sessions.begin() as session:
            await session.execute(update(Task).where(Task.lease_owner == self.owner)
                                  .values(lease_owner="", lease_expires=None))

    async def _progress(self) -> dict[str, JobProgress] | None:
        try:
            found = await self._bounded(self.channel.progress())
        except (ChannelUnavailable, TimeoutError) as exc:
            log.warning("the jobs' progress could not be read: %s", exc or "timed out")
            return None
        return {item.job_id: item for item in found}

    async def _step(self, session: AsyncSession, progress: dict[str, JobProgress] | None,
                    live: LiveHosts | None) -> tuple[list[Job], list[JobRef]]:
        now = time.time()
        # Locked to the end of the round's transaction, and only while our lease holds: a round that outlasted the
        # lease (a stalled database) moves nothing, and a manager claiming the task meanwhile waits for this round's
        # writes before it reads the task's rows, so no host's end is stored (and told) twice.
        tasks = list((await session.execute(
            select(Task).where(Task.state.in_(ACTIVE_TASK_STATES)).where(Task.lease_owner == self.owner)
            .where(Task.lease_expires >= now).order_by(Task.id).with_for_update()
        )).scalars())
        to_put: list[Job] = []
        for task in tasks:
            rows = list((await session.execute(select(TaskHost).where(TaskHost.task_id == task.id)
                                               .order_by(TaskHost.id))).scalars())
            if task.state == "pending":
                task.state, task.started_at = "running", now
                event(session, task.id, RUNNER, "started", f"{len(rows)} hosts")
            if progress is not None:
                for row in rows:
                    self._store(session, task, row, progress.get(row.job_id) if row.job_live else None, now)
            self._time_out(session, task, rows, now)
            if all(row.state in FINAL_STATES for row in rows):
                self._finish(session, task, rows, now)
                continue
            to_put += await self._give(session, task, rows, live, progress, now)
        # Every job whose last progress is stored, or whose task is over, leaves the supernode.
        over = (await session.execute(
            select(TaskHost.job_id, TaskHost.host_id).join(Task, Task.id == TaskHost.task_id)
            .where(TaskHost.job_live.is_(True))
            .where(TaskHost.state.in_(sorted(FINAL_STATES)) | Task.state.not_in(ACTIVE_TASK_STATES))
        )).all()
        return to_put, [JobRef(job_id, host_id) for job_id, host_id in over]

    def _store(self, session: AsyncSession, task: Task, row: TaskHost, seen: JobProgress | None, now: float) -> None:
        if seen is None or row.state in FINAL_STATES:
            return
        self._put_at[row.job_id] = now
        row.bytes_done, row.bytes_total = seen.bytes_done, seen.bytes_total
        row.from_upstream, row.from_peers = seen.from_upstream, seen.from_peers
        row.blobs = [blob.to_json() for blob in seen.blobs]
        if seen.started_at and not row.started_at:
            row.started_at = seen.started_at
        if seen.final:
            row.state = seen.state
            row.error = seen.error[:MAX_ERROR]
            row.finished_at = seen.finished_at or now
            event(session, task.id, RUNNER, f"host {seen.state}", f"{row.host_id}: {seen.error}" if seen.error
                  else row.host_id)

    def _time_out(self, session: AsyncSession, task: Task, rows: list[TaskHost], now: float) -> None:
        if not task.timeout or task.started_at is None or now < task.started_at + task.timeout:
            return
        late = [row for row in rows if row.state not in FINAL_STATES]
        for row in late:
            row.state, row.finished_at = "failed", now
            row.error = (f"timed out after {task.timeout:.0f} s" if row.job_live
                         else f"the host was down until the timeout ({task.timeout:.0f} s)")
        if late:
            event(session, task.id, RUNNER, "timed out", f"{len(late)} hosts unfinished")

    def _finish(self, session: AsyncSession, task: Task, rows: list[TaskHost], now: float) -> None:
        succeeded = all(row.state == "succeeded" for row in rows)
        task.state = "succeeded" if succeeded else "failed"
        task.error = "" if succeeded else failure_summary(rows)
        task.finished_at = now
        event(session, task.id, RUNNER, task.state, task.error)

    async def _give(self, session: AsyncSession, task: Task, rows: list[TaskHost], live: LiveHosts | None,
                    progress: dict[str, JobProgress] | None, now: float) -> list[Job]:
        """Jobs to put: new ones for live hosts within the concurrency, and live ones the supernode lost."""
        credential = await self._credential(session, task)
        jobs: list[Job] = []
        active = [row for row in rows if row.job_live and row.state not in FINAL_STATES]
        for row in active:
            reported = progress is not None and row.job_id in progress
            lost = not reported and now - self._put_at.get(row.job_id, 0.0) >= self.reput_every
            if self._resuming or lost:
                jobs.append(self._job(task, row, credential))
        slots = (task.concurrency or len(rows)) - len(active)
        waiting = [row for row in rows if not row.job_live and row.state == "pending"]
        for row in waiting:
            if slots <= 0 or live is None:
                break
            if row.host_id not in live.hosts:
                continue
            row.job_id = job_id_of(task.id, row.id, row.attempt)
            row.job_live, row.state, row.started_at = True, "running", now
            jobs.append(self._job(task, row, credential))
            slots -= 1
        return jobs

    async def _credential(self, session: AsyncSession, task: Task) -> RegistryCredential | None:
        if task.secret_id is None:
            return None
        secret = await session.get(RegistrySecret, task.secret_id)
        if secret is None:
            return None
        try:
            return RegistryCredential(secret.username, self.box.open(secret.password_encrypted))
        except SecretUnreadable as exc:
            log.warning("task %d: secret %r: %s", task.id, secret.name, exc)
            return None

    def _job(self, task: Task, row: TaskHost, credential: RegistryCredential | None) -> Job:
        return build_job(task, row.host_id, row.job_id, credential)

    async def _put(self, jobs: list[Job]) -> None:
        for job in jobs:
            try:
                taken = await self._bounded(self.channel.put(job))
                reason = "" if taken else "refused"
            except (ChannelUnavailable, TimeoutError) as exc:
                reason = str(exc) or "timed out"
            if reason:
                # Put again on a later round: the job is live in the database, not yet on the supernode.
                self._put_at.pop(job.job_id, None)
                log.warning("job %s for host %s not put: %s", job.job_id, job.host_id, reason)
            else:
                self._put_at[job.job_id] = time.time()

    async def cancel(self, refs: Sequence[JobRef]) -> bool:
        """Cancel each job on the channel; those cancelled are live no more. False if any was not reached."""
        cancelled: list[str] = []
        for ref in refs:
            try:
                await self._bounded(self.channel.cancel(ref.job_id, ref.host_id))
            except (ChannelUnavailable, TimeoutError) as exc:
                log.warning("job %s not cancelled yet: %s", ref.job_id, exc or "timed out")
                continue
            cancelled.append(ref.job_id)
            self._put_at.pop(ref.job_id, None)
        if cancelled:
            async with self.sessions.begin() as session:
                for row in (await session.execute(select(TaskHost).where(TaskHost.job_id.in_(cancelled)))).scalars():
                    row.job_live = False
        return len(cancelled) == len(refs)

    async def dry_run(self, task: Task, host_ids: Sequence[str], credential: RegistryCredential | None,
                      wait: float) -> dict[str, Any]:
        """Jobs that move nothing, to the live hosts among `host_ids`; their answers within `wait` seconds."""
        live = await self._bounded(self.book.snapshot())
        tag = secrets.token_hex(6)
        refs = {host: JobRef(f"dry-{tag}-{n}", host) for n, host in enumerate(host_ids) if host in live.hosts}
        answers: dict[str, JobProgress] = {}
        try:
            for ref in refs.values():
                await self._bounded(self.channel.put(build_job(task, ref.host_id, ref.job_id, credential,
                                                               dry_run=True)))
            deadline = time.monotonic() + wait
            while len(answers) < len(refs) and time.monotonic() < deadline:
                await asyncio.sleep(min(0.5, max(deadline - time.monotonic(), 0.0)))
                seen = {item.job_id: item for item in await self._bounded(self.channel.progress())}
                answers.update({ref.host_id: seen[ref.job_id] for ref in refs.values()
                                if ref.job_id in seen and seen[ref.job_id].final})
        finally:
            for ref in refs.values():
                try:
                    await self._bounded(self.channel.cancel(ref.job_id, ref.host_id))
                except (ChannelUnavailable, TimeoutError):
                    log.warning("dry-run job %s not cancelled", ref.job_id)
        return dry_run_answer(host_ids, set(refs), answers)


def build_job(task: Task, host_id: str, job_id: str, credential: RegistryCredential | None, *,
              dry_run: bool = False) -> Job:
    deadline = (task.started_at or time.time()) + task.timeout if task.timeout else 0.0
    spec = dict(task.spec)
    return Job(
        job_id=job_id, task_id=str(task.id or 0), host_id=host_id, kind=task.kind,  # type: ignore[arg-type]
        mode=task.mode,  # type: ignore[arg-type]
        image=ImageSpec(spec["reference"], tuple(spec.get("platforms", ()))) if task.kind == "image" else None,
        file=FileSpec(spec["url"], spec["path"], spec.get("digest", "")) if task.kind == "file" else None,
        rate=task.rate, deadline=deadline, credential=credential, dry_run=dry_run,
    )


def dry_run_answer(host_ids: Sequence[str], asked: set[str], answers: dict[str, JobProgress]) -> dict[str, Any]:
    """Which hosts lack which blobs, the bytes that must move to them, and what the upstream should send: one copy
    of each blob that no targeted host holds whole (the peers spread it from there)."""
    hosts: list[dict[str, Any]] = []
    sizes: dict[str, int] = {}
    held: set[str] = set()
    for host in host_ids:
        answer = answers.get(host)
        if answer is None:
            hosts.append({"host": host, "state": "down" if host not in asked else "no answer", "missing": [],
                          "bytes_missing": 0, "error": ""})
            continue
        missing = []
        for blob in answer.blobs:
            sizes[blob.digest] = max(sizes.get(blob.digest, 0), blob.size)
            if blob.bytes_done >= blob.size:
                held.add(blob.digest)
            else:
                missing.append({"digest": blob.digest, "size": blob.size, "bytes_missing": blob.size - blob.bytes_done})
        hosts.append({"host": host, "state": answer.state, "missing": missing,
                      "bytes_missing": sum(m["bytes_missing"] for m in missing), "error": answer.error})
    upstream = sum(size for digest, size in sizes.items() if digest not in held)
    return {
        "hosts": hosts, "bytes_to_move": sum(h["bytes_missing"] for h in hosts), "upstream_bytes": upstream,
        "answered": len(answers), "asked": len(asked), "targeted": len(host_ids),
    }
