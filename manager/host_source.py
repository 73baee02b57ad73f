"""Where the platform learns of hosts, live: the supernode's own registry of peers, read in place when the supernode
hosts the platform (damselfly/hosting.py), or the supernodes' read API (`GET /api/v1/peers`) when the manager runs
alone. One protocol, two implementations; the supernode never imports this (the dependency goes this way only).

A snapshot is what the supernodes know now: the hosts registered and heard lately. A host that is not in it is not
(any longer) registered: manager/hosts.py shows it as down from what the database kept of it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from supernode import routes
from supernode.api import CordonSet, HostFacts, PeerList, SwarmList
from supernode.scheduler import Scheduler

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LiveHost:
    host_id: str
    # The URL other peers dial for its pieces, as the supernode built it.
    url: str
    labels: dict[str, str]
    facts: HostFacts | None
    # Wall-clock seconds (epoch) of its last register or heartbeat.
    last_seen: float
    # The sha256 of the cluster join token it registered with ("" for none): it places the host in that cluster.
    cluster_token_hash: str = ""


@dataclass(frozen=True, slots=True)
class LiveHosts:
    hosts: dict[str, LiveHost] = field(default_factory=dict)
    # How often hosts heartbeat: what "healthy" and "stale" are measured in.
    heartbeat_interval: float = 2.0
    # Supernodes that could not be read (standalone only): their hosts are missing from `hosts`, not gone.
    unreachable: tuple[str, ...] = ()


class HostSource(Protocol):
    async def snapshot(self) -> LiveHosts:
        """The hosts the supernode(s) know now."""
        ...

    async def set_cordoned(self, host_ids: Iterable[str]) -> bool:
        """Tell the scheduler(s) every cordoned host (the whole set); False where that cannot be done."""
        ...

    async def swarms_tracked(self) -> int | None:
        """How many swarms the supernode(s) track now (those of blobs pulled lately); None if none could say."""
        ...

    async def close(self) -> None: ...


class SchedulerSource:
    """The supernode's scheduler in this very process: read in place, no copy kept, no request made."""

    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler

    async def snapshot(self) -> LiveHosts:
        # The scheduler's clock is monotonic; the platform shows wall-clock times.
        offset = time.time() - time.monotonic()
        hosts = {
            record.peer_id: LiveHost(record.peer_id, record.url, dict(record.labels), record.host,
                                     record.last_seen + offset, record.cluster_token_hash)
            for record in list(self._scheduler.peers.values())
        }
        return LiveHosts(hosts, self._scheduler.config.heartbeat_interval)

    async def set_cordoned(self, host_ids: Iterable[str]) -> bool:
        self._scheduler.set_cordoned(host_ids)
        return True

    async def swarms_tracked(self) -> int | None:
        return len(self._scheduler.swarms)

    async def close(self) -> None:
        return None


class SupernodeApiSource:
    """The supernodes' read API, for a manager that runs alone: each is asked with the operators' token and a
    short timeout; one that does not answer is named in the snapshot, and its hosts are not taken for gone."""

    def __init__(self, urls: Iterable[str], operator_token: str, *, timeout: float = 3.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.urls = [url.rstrip("/") for url in urls if url.strip()]
        headers = {"Authorization": f"Bearer {operator_token}"} if operator_token else {}
        self._http = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(timeout), trust_env=False,
                                       transport=transport)

    async def snapshot(self) -> LiveHosts:
        hosts: dict[str, LiveHost] = {}
        unreachable: list[str] = []
        interval = 0.0
        for url in self.urls:
            now = time.time()
            try:
                answer = await self._http.get(url + routes.LIST_PEERS.url())
                answer.raise_for_status()
                listed = PeerList.from_json(answer.json())
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                # Once per read, without the token (httpx does not put headers in its errors).
                log.warning("supernode %s: its hosts could not be read: %s", url, _reason(exc))
                unreachable.append(url)
                continue
            interval = max(interval, listed.heartbeat_interval)
            for peer in listed.peers:
                seen = now - max(peer.seen_ago, 0.0)
                known = hosts.get(peer.peer_id)
                # Sharded supernodes all know every peer: the freshest word wins.
                if known is None or seen > known.last_seen:
                    hosts[peer.peer_id] = LiveHost(peer.peer_id, peer.url, dict(peer.labels), peer.host, seen,
                                                   peer.cluster_token_hash)
        return LiveHosts(hosts, interval or 2.0, tuple(unreachable))

    async def swarms_tracked(self) -> int | None:
        # Sharded supernodes each track the swarms of their shard: the digests of all that answered, once each.
        digests: set[str] = set()
        answered = False
        for url in self.urls:
            try:
                answer = await self._http.get(url + routes.LIST_SWARMS.url())
                answer.raise_for_status()
                digests.update(swarm.digest for swarm in SwarmList.from_json(answer.json()).swarms)
                answered = True
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                log.warning("supernode %s: its swarms could not be read: %s", url, _reason(exc))
        return len(digests) if answered else None

    async def set_cordoned(self, host_ids: Iterable[str]) -> bool:
        # Every supernode: a cordoned host is no parent in any shard's swarms. The whole set each time, so telling
        # it again (at the manager's start, after a change) is harmless; True only if every supernode heard it.
        body = CordonSet(tuple(host_ids)).to_json()
        told = True
        for url in self.urls:
            try:
                answer = await self._http.put(url + routes.SET_CORDONED.url(), json=body)
                answer.raise_for_status()
            except httpx.HTTPError as exc:
                log.warning("supernode %s: the cordoned hosts could not be told: %s", url, _reason(exc))
                told = False
        return told

    async def close(self) -> None:
        await self._http.aclose()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"answered {exc.response.status_code}"
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
