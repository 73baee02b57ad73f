"""Several supernode processes, each owning a share of the swarms.

One supernode process answers about 12,800 of the 32,000 calls per second that 10,000 hosts pulling at once make
(docs/benchmarks.md). Swarms are independent of each other, so they shard by digest with nothing to share but
the peer list, which every process learns from the peers themselves: a peer registers, heartbeats and leaves
with every process, and talks about a blob only with the process that owns its digest.

The owner is chosen by rendezvous hashing (the URL with the highest sha256 of URL and digest): every peer given
the same list of URLs, in any order, picks the same owner, and adding or removing a process moves only the
swarms it gains or loses. Peers given different lists would split a swarm, and each part would fetch the blob
from the upstream once: give every peer the same list.

A host's jobs (supernode/jobs.py) live with one process too: the owner of the host's peer id, by the same hashing.
The host long-polls its jobs and posts their progress there, and the platform puts and cancels them there.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from .api import HostFacts, JoinRequest, RegisterRequest, RegisterResponse, ReportRequest, SwarmView
from .client import JoinRefused, SupernodeClient, SupernodeUnavailable, UnknownPeer
from .jobs import JobList, ProgressReport

T = TypeVar("T")


def owner_index(urls: Sequence[str], key: str) -> int:
    """Which of `urls` owns `key` (rendezvous hashing): a digest's swarm, or a host's jobs (`key` its peer id)."""
    scores = [hashlib.sha256(f"{url.rstrip('/')}\n{key}".encode()).digest() for url in urls]
    return max(range(len(urls)), key=scores.__getitem__)


class SupernodeShards:
    """The supernode API over one or more processes: the peer-level calls go to all, the swarm-level ones to the
    owner of the digest, the host's jobs to the owner of its peer id. With one URL it is that supernode, unchanged."""

    def __init__(self, clients: Sequence[SupernodeClient]) -> None:
        if not clients:
            raise ValueError("at least one supernode")
        self.clients = list(clients)
        self.urls = [client.base_url for client in self.clients]

    def owner(self, key: str) -> SupernodeClient:
        """The process that owns `key`: a digest, or a host's peer id."""
        return self.clients[owner_index(self.urls, key)]

    # --- the peer, with every process ----------------------------------------------------------------

    async def register(self, request: RegisterRequest) -> RegisterResponse:
        """Registered where possible; fails only if no process took it (a refused join token or identity fails
        at once). A process that was down learns of the peer when its heartbeat there is answered 'unknown'. Each
        process issues its own credential, which its client keeps (supernode/identity.py)."""
        answers = await self._everywhere(lambda client: client.register(request))
        return answers[0]

    async def heartbeat(self, peer_id: str, host: HostFacts | None = None) -> None:
        await self._everywhere(lambda client: client.heartbeat(peer_id, host))

    async def leave(self, peer_id: str) -> None:
        await self._everywhere(lambda client: client.leave(peer_id))

    async def _everywhere(self, call: Callable[[SupernodeClient], Awaitable[T]]) -> list[T]:
        """`call` on every process at once: the answers of those that gave one. Raises JoinRefused or UnknownPeer
        if any process said so (the caller registers again, with all of them), else SupernodeUnavailable if none
        answered."""
        outcomes = await asyncio.gather(*(call(client) for client in self.clients), return_exceptions=True)
        answers: list[T] = []
        failures: list[BaseException] = []
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                failures.append(outcome)
            else:
                answers.append(outcome)
        for kind in (JoinRefused, UnknownPeer):
            for failure in failures:
                if isinstance(failure, kind):
                    raise failure
        for failure in failures:
            if not isinstance(failure, SupernodeUnavailable):
                raise failure  # not a supernode's answer: a bug or a cancellation, never swallowed
        if not answers:
            raise failures[0]
        return answers

    # --- one swarm, with its owner -------------------------------------------------------------------

    async def join(self, digest: str, request: JoinRequest) -> SwarmView:
        return await self.owner(digest).join(digest, request)

    async def report(self, digest: str, request: ReportRequest) -> int | None:
        return await self.owner(digest).report(digest, request)

    async def view(self, digest: str, peer_id: str, since: int, wait: float, digests_from: int = 0) -> SwarmView:
        return await self.owner(digest).view(digest, peer_id, since, wait, digests_from)

    # --- the host's jobs, with the owner of its peer id -----------------------------------------------

    async def jobs(self, peer_id: str, since: int, wait: float) -> JobList:
        return await self.owner(peer_id).jobs(peer_id, since, wait)

    async def post_job_progress(self, peer_id: str, report: ProgressReport) -> None:
        await self.owner(peer_id).post_job_progress(peer_id, report)
