"""Hosts as the platform shows them: the supernodes' live word (manager/host_source.py) over what the database kept.

Each read takes a live snapshot (seconds old at most: the hosts' last heartbeats) and writes it through to the
`hosts` table, so that a host gone from the supernodes is still listed, as down, with the time it was last seen. The
writes are bounded: a host's row is written when it is new, when what identifies it changed (address, labels, name,
version, the hash of the cluster token it joined with), or when its last write is `host_write_every` seconds old;
in between, the live facts are shown unwritten.

States, in heartbeat intervals since the host was last heard: healthy (up to `healthy_beats`), stale (up to
`stale_beats`, or until the supernode expires it), down (longer, or not registered any more).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .api_session import iso
from .clusters import Scopes, joined
from .config import ManagerConfig
from .host_source import HostSource, LiveHost, LiveHosts
from .models import Cluster, Host

log = logging.getLogger(__name__)

HEALTHY, STALE, DOWN = "healthy", "stale", "down"
STATES = (HEALTHY, STALE, DOWN)


@dataclass(frozen=True, slots=True)
class HostView:
    row: Host
    state: str
    clusters: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        row = self.row
        return {
            "id": row.host_id, "hostname": row.hostname, "address": row.url, "labels": dict(row.labels),
            "version": row.version, "state": self.state,
            "disk": {"used": row.disk_used, "total": row.disk_total, "quota": row.disk_quota},
            "upload_rate": row.upload_rate, "download_rate": row.download_rate, "swarms": row.swarms,
            "first_seen": iso(row.first_seen), "last_seen": iso(row.last_seen),
            "seen_ago": round(max(time.time() - row.last_seen, 0.0), 1),
            "cordoned": row.cordoned,
            "cordon": {"by": row.cordoned_by, "at": iso(row.cordoned_at)} if row.cordoned and row.cordoned_at else None,
            "clusters": list(self.clusters),
        }


def state_of(live: bool, last_seen: float, now: float, interval: float, config: ManagerConfig) -> str:
    if not live:
        return DOWN
    age = now - last_seen
    if age <= interval * config.healthy_beats:
        return HEALTHY
    return STALE if age <= interval * config.stale_beats else DOWN


def cluster_scopes(cluster: Cluster) -> Scopes:
    return Scopes.of(dict(cluster.labels), list(cluster.cidrs), list(cluster.hostnames))


def _identity(host: LiveHost) -> tuple[Any, ...]:
    name, version = (host.facts.hostname, host.facts.version) if host.facts else ("", "")
    return (host.url, tuple(sorted(host.labels.items())), name, version, host.cluster_token_hash)


def _apply(row: Host, host: LiveHost) -> None:
    """The live facts onto the row (in memory; written when the session commits)."""
    row.url = host.url
    row.labels = dict(host.labels)
    row.cluster_token_hash = host.cluster_token_hash
    row.last_seen = max(row.last_seen or 0.0, host.last_seen)
    facts = host.facts
    if facts is not None:
        row.hostname, row.version = facts.hostname, facts.version
        row.disk_used, row.disk_total, row.disk_quota = facts.disk_used, facts.disk_total, facts.disk_quota
        row.upload_rate, row.download_rate, row.swarms = facts.upload_rate, facts.download_rate, facts.swarms


async def _clusters(session: AsyncSession) -> list[tuple[str, Scopes, str]]:
    """Each cluster's name, scopes and join token's hash: what places hosts in it."""
    return [(c.name, cluster_scopes(c), c.token_hash) for c in (await session.execute(select(Cluster))).scalars()]


class HostBook:
    def __init__(self, source: HostSource | None, config: ManagerConfig) -> None:
        self.source = source
        self.config = config
        # By host: when its row was last written, and what identified it then.
        self._written: dict[str, tuple[float, tuple[Any, ...]]] = {}

    async def snapshot(self) -> LiveHosts:
        return await self.source.snapshot() if self.source is not None else LiveHosts()

    async def views(self, sessions: async_sessionmaker[AsyncSession]) -> list[HostView]:
        """Every host the platform knows, in the order it first saw them, live facts over stored ones."""
        live = await self.snapshot()
        now = time.time()
        try:
            async with sessions.begin() as session:
                rows = await self._write_through(session, live, now)
                clusters = await _clusters(session)
        except IntegrityError:
            # Another manager on the same database wrote a new host first: the next read takes its row.
            log.info("a host row was written by another manager meanwhile; read again")
            async with sessions() as session:
                rows = list((await session.execute(select(Host).order_by(Host.id))).scalars())
                clusters = await _clusters(session)
        views = []
        for row in rows:
            host = live.hosts.get(row.host_id)
            if host is not None:
                _apply(row, host)  # shown live, whether written this time or not
            state = state_of(host is not None, row.last_seen, now, live.heartbeat_interval, self.config)
            placed = tuple(
                name for name, scopes, token_hash in clusters
                if scopes.places(row.labels, row.url, row.hostname) or joined(row.cluster_token_hash, token_hash)
            )
            views.append(HostView(row, state, placed))
        return views

    async def _write_through(self, session: AsyncSession, live: LiveHosts, now: float) -> list[Host]:
        rows = list((await session.execute(select(Host).order_by(Host.id))).scalars())
        known = {row.host_id: row for row in rows}
        for host in live.hosts.values():
            row = known.get(host.host_id)
            identity = _identity(host)
            written = self._written.get(host.host_id)
            if row is None:
                row = Host(host_id=host.host_id, first_seen=host.last_seen, last_seen=host.last_seen, labels={},
                           cordoned=False, cordoned_by="")
                _apply(row, host)
                session.add(row)
                rows.append(row)
            elif written is None or written[1] != identity or now - written[0] >= self.config.host_write_every:
                _apply(row, host)
            else:
                continue
            self._written[host.host_id] = (now, identity)
        await session.flush()
        for row in rows:
            # What is shown beyond this point is never written by accident: the session is done with them.
            session.expunge(row)
        return rows

    async def swarms_tracked(self) -> int | None:
        return await self.source.swarms_tracked() if self.source is not None else None

    async def push_cordons(self, sessions: async_sessionmaker[AsyncSession]) -> bool:
        """Tell the scheduler every cordoned host; False where it cannot be told (a standalone manager)."""
        if self.source is None:
            return False
        async with sessions() as session:
            ids = list((await session.execute(select(Host.host_id).where(Host.cordoned.is_(True)))).scalars())
        return await self.source.set_cordoned(ids)
