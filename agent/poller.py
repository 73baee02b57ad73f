"""The host's side of the job channel (supernode/jobs.py): long-poll the supernode for this host's jobs, hand each
list to the runner, post the jobs' progress back, batched, at most every `progress_interval` and at once on a change
of state. A supernode that is down is waited for (bounded backoff); neither loop ever ends on an error."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Protocol

from supernode.jobs import JobList, JobProgress, ProgressReport

from .config import AgentConfig
from .runner import JobRunner

log = logging.getLogger(__name__)
# A report holds at most this many jobs (supernode/jobs.py ProgressReport).
REPORT_BATCH = 256
REPORT_BYTES = 512 * 1024
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 15.0
# An answer faster than this is not waited on again at once: a broken supernode must not make us spin.
MIN_POLL_INTERVAL = 0.1


class JobSource(Protocol):
    """The supernode as the agent sees it (supernode/client.py SupernodeClient)."""

    async def jobs(self, peer_id: str, since: int, wait: float) -> JobList: ...

    async def post_job_progress(self, peer_id: str, report: ProgressReport) -> None: ...


class JobPoller:
    def __init__(
        self, source: JobSource, peer_id: Callable[[], str], runner: JobRunner, config: AgentConfig
    ) -> None:
        self.source = source
        # Read at each call: the supernode may name this host anew when it registers again.
        self.peer_id = peer_id
        self.runner = runner
        self.config = config
        self.version = -1

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._poll_loop(), name="agent-poll")
            group.create_task(self._post_loop(), name="agent-progress")

    async def _poll_loop(self) -> None:
        backoff = FIRST_BACKOFF
        wait = self.config.poll_wait
        while True:
            began = time.monotonic()
            try:
                # Bounded here too: the long-poll is held `wait` seconds at most, plus the way there and back.
                async with asyncio.timeout(wait + 15.0):
                    listing = await self.source.jobs(self.peer_id(), self.version, wait)
            except Exception as exc:  # the supernode is down, restarting, or answered nonsense: wait and ask again
                log.debug("the host's jobs could not be had: %s", exc)
                self.runner.supernode_lost()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = FIRST_BACKOFF
            self.version = listing.version
            self.runner.reconcile(listing.jobs)
            await asyncio.sleep(max(0.0, MIN_POLL_INTERVAL - (time.monotonic() - began)))

    async def _post_loop(self) -> None:
        backoff = FIRST_BACKOFF
        while True:
            changed = self.runner.changed
            # Woken at once by a change of state; else a running job's bytes are told every interval.
            try:
                async with asyncio.timeout(self.config.progress_interval):
                    await changed.wait()
            except TimeoutError:
                pass
            changed.clear()
            due = self.runner.due()
            if not due:
                continue
            try:
                await self._post(due)
            except Exception as exc:
                log.debug("job progress could not be posted: %s", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = FIRST_BACKOFF
            # A burst of state changes is posted together, not one report each.
            await asyncio.sleep(0.05)

    async def _post(self, due: list[JobProgress]) -> None:
        for batch in batches(due):
            async with asyncio.timeout(30.0):
                await self.source.post_job_progress(self.peer_id(), ProgressReport(tuple(batch)))
            self.runner.posted(batch)


def batches(due: list[JobProgress]) -> list[list[JobProgress]]:
    """Reports of at most REPORT_BATCH jobs and about REPORT_BYTES of JSON each: the supernode takes 1 MiB a body."""
    out: list[list[JobProgress]] = [[]]
    size = 0
    for item in due:
        weight = len(json.dumps(item.to_json()))
        if out[-1] and (len(out[-1]) >= REPORT_BATCH or size + weight > REPORT_BYTES):
            out.append([])
            size = 0
        out[-1].append(item)
        size += weight
    return [batch for batch in out if batch]
