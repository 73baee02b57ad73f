"""The agent as the peer daemon runs it: the runner of this host's jobs, the poller that feeds it, and the upstream
clients its image jobs fetch manifests with. Started after the peer (it needs the peer registered), closed before."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from peer.service import PeerService
from supernode.jobs import Job
from upstream.clients import Upstreams

from .config import AgentConfig
from .file_job import run_file_job
from .image_job import run_image_job
from .poller import JobPoller, JobSource
from .progress import JobTracker
from .runner import JobRunner

log = logging.getLogger(__name__)


class Agent:
    def __init__(self, peer: PeerService, config: AgentConfig, source: JobSource | None = None) -> None:
        self.peer = peer
        self.config = config
        self.upstreams = Upstreams(peer.config.upstream)
        self.runner = JobRunner(self.work, remembered=config.remembered_jobs)
        self._source = source
        self._task: asyncio.Task[Any] | None = None

    def source(self) -> JobSource | None:
        """The supernode(s) this host's jobs come from: of several, the owner of the peer's id, asked anew at each
        call (supernode/shards.py), so the jobs follow the owner when supernodes come and go."""
        if self._source is not None:
            return self._source
        return self.peer.supernode

    async def start(self) -> None:
        source = self.source()
        if source is None:
            log.info("no supernode: the agent has no jobs to ask for")
            return
        poller = JobPoller(source, lambda: self.peer.peer_id, self.runner, self.config)
        self._task = asyncio.create_task(poller.run(), name="agent")

    async def work(self, job: Job, tracker: JobTracker) -> None:
        if job.kind == "image":
            await run_image_job(job, tracker, self.peer, self.upstreams, self.config)
        else:
            await run_file_job(job, tracker, self.peer, self.config)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        await self.runner.close()
        await self.upstreams.aclose()
