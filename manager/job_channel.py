"""How a task's jobs reach the hosts: through the supernode each host already long-polls (supernode/jobs.py). One
protocol, two implementations, as for the hosts (manager/host_source.py):

- `BoardChannel`: the supernode's job board (supernode/job_board.py) in this very process (the platform hosted by
  `damselfly supernode`);
- `SupernodeChannel`: the supernodes' API (`PUT`/`DELETE /api/v1/jobs/{id}`, `GET /api/v1/jobs`) with the
  operators' token, for a manager that runs alone. A host's jobs go to the supernode that owns its id
  (supernode/shards.py `owner_index`), the one its daemon long-polls: over the live set of the supernode directory
  (supernode/directory.py) when the supernodes keep one, as the hosts do, else over the list given.

Every call of either is bounded in time; a supernode that does not answer raises ChannelUnavailable, and the task
runner tries again on its next round (puts are idempotent: the same job id is one job).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Protocol

import httpx

from supernode.api import BadRequest
from supernode.client import NoDirectory, OperatorClient, SupernodeUnavailable
from supernode.job_board import JobBoard, JobBoardFull, JobMoved
from supernode.jobs import Job, JobProgress
from supernode.shards import DIRECTORY_INTERVAL, owner_index

log = logging.getLogger(__name__)


class ChannelUnavailable(Exception):
    """A supernode did not take or answer a call in time; one line, never a job's credential."""


class JobChannel(Protocol):
    async def put(self, job: Job) -> bool:
        """Give the job to its host (idempotent: a job put again is the same job)."""
        ...

    async def cancel(self, job_id: str, host_id: str) -> bool:
        """Take the job back: its host stops it within seconds; also once its last progress was stored."""
        ...

    async def progress(self) -> list[JobProgress]:
        """The last progress of every job the supernode(s) hold."""
        ...

    async def close(self) -> None: ...


class BoardChannel:
    """The supernode's JobBoard in this process. A cancel is the board's `withdraw`, what `DELETE /api/v1/jobs/{id}`
    does: cancelled, and forgotten once its last progress is final."""

    def __init__(self, board: JobBoard) -> None:
        self._board = board

    async def put(self, job: Job) -> bool:
        try:
            # False from the board means "held as it is already": put all the same.
            self._board.put(job)
        except (JobBoardFull, JobMoved) as exc:
            raise ChannelUnavailable(str(exc)) from None
        return True

    async def cancel(self, job_id: str, host_id: str) -> bool:
        self._board.withdraw(job_id)
        return True

    async def progress(self) -> list[JobProgress]:
        return list(self._board.progress())

    async def close(self) -> None:
        return None


class SupernodeChannel:
    """The supernodes' job API (supernode/client.py OperatorClient), a host's jobs at the supernode owning its id."""

    def __init__(self, urls: Iterable[str], operator_token: str, *, timeout: float = 3.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.urls = [url.rstrip("/") for url in urls if url.strip()]
        if not self.urls:
            raise ValueError("at least one supernode URL")
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout), trust_env=False, transport=transport)
        self._operator_token = operator_token
        self._clients = [OperatorClient(url, self._http, operator_token) for url in self.urls]
        self._seeds = list(self._clients)
        self._next_refresh = 0.0

    def owner(self, host_id: str) -> OperatorClient:
        return self._clients[owner_index(self.urls, host_id)]

    async def _refresh(self) -> None:
        """The supernodes as the directory lists them, read at most every few seconds (the hosts read it as often:
        supernode/shards.py); without a directory, or with none answering, the list stays as it is."""
        if time.monotonic() < self._next_refresh:
            return
        self._next_refresh = time.monotonic() + DIRECTORY_INTERVAL
        known = {client.base_url: client for client in self._clients}
        for client in [*self._clients, *(c for c in self._seeds if c.base_url not in known)]:
            try:
                listing = await client.list_supernodes()
            except (NoDirectory, SupernodeUnavailable):
                continue
            if listing.age is None:
                continue  # that supernode never reached Redis: it knows only itself
            self.urls = list(listing.supernodes)
            self._clients = [known.get(url) or OperatorClient(url, self._http, self._operator_token)
                             for url in self.urls]
            return

    async def put(self, job: Job) -> bool:
        await self._refresh()
        try:
            await self.owner(job.host_id).put_job(job)
        except SupernodeUnavailable as exc:
            # Its text, never the request's body: a job may carry a registry credential.
            raise ChannelUnavailable(_line(exc)) from None
        return True

    async def cancel(self, job_id: str, host_id: str) -> bool:
        await self._refresh()
        try:
            await self.owner(host_id).cancel_job(job_id)
        except SupernodeUnavailable as exc:
            raise ChannelUnavailable(_line(exc)) from None
        return True

    async def progress(self) -> list[JobProgress]:
        """From every supernode at once; one that does not answer is logged and left out of this round."""
        await self._refresh()
        answers = await asyncio.gather(*(client.list_job_progress() for client in self._clients),
                                       return_exceptions=True)
        found: list[JobProgress] = []
        failures = 0
        for url, answer in zip(self.urls, answers, strict=True):
            if isinstance(answer, SupernodeUnavailable | ValueError | BadRequest):
                failures += 1
                log.warning("supernode %s: job progress not read: %s", url, _line(answer))
            elif isinstance(answer, BaseException):
                raise answer
            else:
                found.extend(answer.progress)
        if failures == len(self.urls):
            raise ChannelUnavailable("no supernode answered for the jobs' progress")
        return found

    async def close(self) -> None:
        await self._http.aclose()


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
