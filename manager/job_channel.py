"""How a task's jobs reach the hosts: through the supernode each host already long-polls (supernode/jobs.py). One
protocol, two implementations, as for the hosts (manager/host_source.py):

- `BoardChannel`: the supernode's job board in this very process (the platform hosted by `damselfly supernode`);
- `SupernodeChannel`: the supernodes' API (`PUT`/`DELETE /api/v1/jobs/{id}`, `GET /api/v1/jobs`) with the
  operators' token, for a manager that runs alone. A host's jobs go to the supernode that owns its id
  (supernode/shards.py `owner_index`), the one its daemon long-polls.

Every call of either is bounded in time; a supernode that does not answer raises ChannelUnavailable, and the task
runner tries again on its next round (puts are idempotent: the same job id is one job).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Protocol

import httpx

from supernode import routes
from supernode.jobs import Job, JobProgress, ProgressList
from supernode.shards import owner_index

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


class Board(Protocol):
    """What `BoardChannel` needs of the supernode's in-process job board (supernode/job_board.py JobBoard)."""

    def put(self, job: Job) -> bool: ...

    def cancel(self, job_id: str) -> bool: ...

    def progress(self) -> list[JobProgress]: ...


class BoardChannel:
    def __init__(self, board: Board) -> None:
        self._board = board

    async def put(self, job: Job) -> bool:
        return self._board.put(job)

    async def cancel(self, job_id: str, host_id: str) -> bool:
        return self._board.cancel(job_id)

    async def progress(self) -> list[JobProgress]:
        return list(self._board.progress())

    async def close(self) -> None:
        return None


class SupernodeChannel:
    def __init__(self, urls: Iterable[str], operator_token: str, *, timeout: float = 3.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.urls = [url.rstrip("/") for url in urls if url.strip()]
        if not self.urls:
            raise ValueError("at least one supernode URL")
        headers = {"Authorization": f"Bearer {operator_token}"} if operator_token else {}
        self._http = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(timeout), trust_env=False,
                                       transport=transport)

    def owner(self, host_id: str) -> str:
        return self.urls[owner_index(self.urls, host_id)]

    async def put(self, job: Job) -> bool:
        url = self.owner(job.host_id) + routes.PUT_JOB.url(job_id=job.job_id)
        answer = await self._request("PUT", url, job.to_json())
        return answer.status_code < 300

    async def cancel(self, job_id: str, host_id: str) -> bool:
        url = self.owner(host_id) + routes.CANCEL_JOB.url(job_id=job_id)
        answer = await self._request("DELETE", url)
        # 404: the supernode no longer holds it, which is what a cancel asks for.
        return answer.status_code < 300 or answer.status_code == 404

    async def progress(self) -> list[JobProgress]:
        """From every supernode at once; one that does not answer is logged and left out of this round."""
        answers = await asyncio.gather(*(self._progress_of(url) for url in self.urls), return_exceptions=True)
        found: list[JobProgress] = []
        failures = 0
        for url, answer in zip(self.urls, answers, strict=True):
            if isinstance(answer, ChannelUnavailable):
                failures += 1
                log.warning("supernode %s: job progress not read: %s", url, answer)
            elif isinstance(answer, BaseException):
                raise answer
            else:
                found.extend(answer)
        if failures == len(self.urls):
            raise ChannelUnavailable("no supernode answered for the jobs' progress")
        return found

    async def _progress_of(self, url: str) -> list[JobProgress]:
        answer = await self._request("GET", url + routes.LIST_JOB_PROGRESS.url())
        if answer.status_code >= 300:
            raise ChannelUnavailable(f"answered {answer.status_code}")
        try:
            return list(ProgressList.parse(answer.json()).progress)
        except (ValueError, TypeError) as exc:
            raise ChannelUnavailable(f"answered no progress list: {str(exc)[:120]}") from None

    async def _request(self, method: str, url: str, body: dict[str, object] | None = None) -> httpx.Response:
        try:
            answer = await self._http.request(method, url, json=body)
        except httpx.HTTPError as exc:
            # The exception's text, not the request: the body may carry a registry credential.
            raise ChannelUnavailable(f"{url.split('/api/', 1)[0]}: {type(exc).__name__}") from None
        if answer.status_code in (401, 403):
            raise ChannelUnavailable(f"{url.split('/api/', 1)[0]} refused the operators' token "
                                     f"({answer.status_code})")
        return answer

    async def close(self) -> None:
        await self._http.aclose()
