"""Several supernode processes, each owning a share of the swarms.

One supernode process answers about 12,800 of the 32,000 calls per second that 10,000 hosts pulling at once make
(docs/benchmarks.md). Swarms are independent of each other, so they shard by digest with nothing to share but
the peer list, which every process learns from the peers themselves: a peer registers, heartbeats and leaves
with every process, and talks about a blob only with the process that owns its digest.

The owner is chosen by rendezvous hashing (the URL with the highest sha256 of URL and digest): every peer given
the same list of URLs, in any order, picks the same owner, and adding or removing a process moves only the
swarms it gains or loses.

The list is the live set of the supernode directory (supernode/directory.py) when the supernodes keep one: a
peer given any one of them reads `GET /api/v1/supernodes` at start and every `DIRECTORY_INTERVAL` seconds, so
supernodes come and go while peers run. Without a directory it is the list the peer was given: give every peer the
same one. Either way a process that does not answer at all (`SupernodeUnreachable`: refused, reset, timed out) is
left out of the owners for `UNANSWERED_FOR` seconds, what every peer sees within a heartbeat, so that its swarms
move before its key expires. A swarm whose owner changes is joined again at the new owner with what each member
holds (peer/swarm_fetch.py, `moved`): the path by which a restarted supernode learns its swarms back.

A host's jobs (supernode/jobs.py) live with one process too: the owner of the host's peer id, by the same hashing.
The host long-polls its jobs and posts their progress there, and the platform puts and cancels them there.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from .api import HostFacts, JoinRequest, RegisterRequest, RegisterResponse, ReportRequest, SwarmView
from .client import JoinRefused, NoDirectory, SupernodeClient, SupernodeUnavailable, SupernodeUnreachable, UnknownPeer
from .jobs import JobList, ProgressReport

T = TypeVar("T")
log = logging.getLogger(__name__)


def owner_index(urls: Sequence[str], key: str) -> int:
    """Which of `urls` owns `key` (rendezvous hashing): a digest's swarm, or a host's jobs (`key` its peer id)."""
    scores = [hashlib.sha256(f"{url.rstrip('/')}\n{key}".encode()).digest() for url in urls]
    return max(range(len(urls)), key=scores.__getitem__)


DIRECTORY_INTERVAL = 2.0
UNANSWERED_FOR = 5.0
MakeClient = Callable[[str], SupernodeClient]


class SupernodeShards:
    """The supernode API over one or more processes: the peer-level calls go to all, the swarm-level ones to the
    owner of the digest, the host's jobs to the owner of its peer id. With one URL it is that supernode, unchanged.

    With `make_client`, the processes are those of the directory (`refresh`), the given ones the seeds it is
    first read from."""

    def __init__(self, clients: Sequence[SupernodeClient], make_client: MakeClient | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not clients:
            raise ValueError("at least one supernode")
        self.clients = list(clients)
        self.seeds = [client.base_url for client in self.clients]
        self._make_client = make_client
        self._clock = clock
        # Until when each process that did not answer is left out of the owners.
        self._unanswered: dict[str, float] = {}
        self._owners = list(self.clients)
        # Replaced at each change of the owners: who waits on it is woken (`moved`).
        self._changed = asyncio.Event()
        # What we register with (kept for processes the directory adds later); None until the first register.
        self._registration: RegisterRequest | None = None
        # Whether a supernode answered with its directory, once (else the list we were given is the list), and
        # whether one said it keeps none.
        self.directory = False
        self._no_directory = False

    @property
    def urls(self) -> list[str]:
        return [client.base_url for client in self.clients]

    def owner(self, key: str) -> SupernodeClient:
        """The process that owns `key`: a digest, or a host's peer id."""
        owners = self._owners
        return owners[owner_index([client.base_url for client in owners], key)]

    async def moved(self, key: str, url: str) -> None:
        """Returns once the owner of `key` is no longer the process at `url`."""
        while self.owner(key).base_url == url:
            await self._changed.wait()

    def _update_owners(self) -> None:
        now = self._clock()
        for url in [url for url, until in self._unanswered.items() if until <= now]:
            del self._unanswered[url]
        # Nobody answering: keep every process, the calls tell when one is back.
        owners = [client for client in self.clients if client.base_url not in self._unanswered] or self.clients
        if [c.base_url for c in owners] != [c.base_url for c in self._owners]:
            self._owners = owners
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

    def _not_answering(self, client: SupernodeClient, failure: BaseException) -> None:
        if isinstance(failure, SupernodeUnreachable) and len(self.clients) > 1:
            if client.base_url not in self._unanswered:
                log.info("supernode %s does not answer: its swarms move to the others", client.base_url)
            self._unanswered[client.base_url] = self._clock() + UNANSWERED_FOR
            self._update_owners()

    # --- the directory -----------------------------------------------------------------------------

    async def refresh(self) -> bool:
        """Read the live set from the first process that tells it (the known ones, then the seeds), and take it as
        the processes: the new ones registered with at once, the gone ones dropped. False: none told it (no
        directory, or none answered), and the processes stay as they were."""
        if self._make_client is None:
            self._update_owners()  # a process left out comes back once its time is over
            return False
        known = {client.base_url: client for client in self.clients}
        asked = [*self._owners, *(c for c in self.clients if c not in self._owners)]
        asked += [self._make_client(url) for url in self.seeds if url not in known]
        for client in asked:
            try:
                listing = await client.list_supernodes()
            except NoDirectory:
                self._no_directory = True
                continue
            except SupernodeUnavailable as exc:
                self._not_answering(client, exc)
                continue
            if listing.age is None:
                continue  # it never reached Redis: it knows only itself, which is no live set
            self.directory = True
            await self._adopt(listing.supernodes, known)
            return True
        self._update_owners()
        return False

    async def _adopt(self, urls: Sequence[str], known: dict[str, SupernodeClient]) -> None:
        assert self._make_client is not None
        clients = []
        for url in urls:
            client = known.get(url)
            if client is None:
                client = self._make_client(url)
                log.info("supernode %s joined the directory", url)
                if self._registration is not None:
                    # Registered before it owns anything of ours; if it fails, its heartbeat's 'unknown' tells us.
                    with contextlib.suppress(SupernodeUnavailable):
                        await client.register(self._registration)
            clients.append(client)
        for url in known.keys() - set(urls):
            log.info("supernode %s left the directory", url)
            self._unanswered.pop(url, None)
        self.clients = clients
        self._update_owners()

    async def keep_refreshed(self, interval: float = DIRECTORY_INTERVAL) -> None:
        """`refresh` for as long as it runs (the peer service owns the task); a list given with no directory behind
        it is asked again seldom, in case its supernodes start keeping one."""
        while True:
            await asyncio.sleep(interval * 5 if self._no_directory and not self.directory else interval)
            await self.refresh()

    # --- the peer, with every process ----------------------------------------------------------------

    async def register(self, request: RegisterRequest) -> RegisterResponse:
        """Registered where possible; fails only if no process took it (a refused join token or identity fails
        at once). A process that was down learns of the peer when its heartbeat there is answered 'unknown'. Each
        process issues its own credential, which its client keeps (supernode/identity.py)."""
        self._registration = request
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
        clients = list(self.clients)
        outcomes = await asyncio.gather(*(call(client) for client in clients), return_exceptions=True)
        answers: list[T] = []
        failures: list[BaseException] = []
        self._update_owners()  # also each heartbeat: a process left out comes back once its time is over
        for client, outcome in zip(clients, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                self._not_answering(client, outcome)
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

    async def _with_owner(self, key: str, call: Callable[[SupernodeClient], Awaitable[T]]) -> T:
        client = self.owner(key)
        try:
            return await call(client)
        except SupernodeUnavailable as exc:
            self._not_answering(client, exc)
            raise

    async def join(self, digest: str, request: JoinRequest) -> SwarmView:
        return await self._with_owner(digest, lambda client: client.join(digest, request))

    async def report(self, digest: str, request: ReportRequest) -> int | None:
        return await self._with_owner(digest, lambda client: client.report(digest, request))

    async def view(self, digest: str, peer_id: str, since: int, wait: float, digests_from: int = 0) -> SwarmView:
        return await self._with_owner(digest, lambda client: client.view(digest, peer_id, since, wait, digests_from))

    # --- the host's jobs, with the owner of its peer id -----------------------------------------------

    async def jobs(self, peer_id: str, since: int, wait: float) -> JobList:
        return await self._with_owner(peer_id, lambda client: client.jobs(peer_id, since, wait))

    async def post_job_progress(self, peer_id: str, report: ProgressReport) -> None:
        await self._with_owner(peer_id, lambda client: client.post_job_progress(peer_id, report))
