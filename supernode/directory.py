"""The supernode directory: which supernode processes are alive, kept in Redis with an expiry.

Each process announces itself under a key of its own (`damselfly:supernode:<advertised URL>`) with a time to live
of a few seconds, refreshed by its one background task, and reads the others' keys in the same round; a process
that dies stops refreshing and drops out of everyone's live set once its key expires. The live set is what peers
hash swarms over (supernode/shards.py), read from any one supernode at `GET /api/v1/supernodes`.

Redis holds nothing else, and nothing of a swarm: while it is unreachable a supernode goes on serving the swarms it
owns and answers with the last live set it read (its own URL always in it), so the peers keep hashing as before.
Every call is bounded twice: the client's socket timeouts, and `asyncio.wait_for` around the round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

log = logging.getLogger(__name__)
KEY_PREFIX = "damselfly:supernode:"


class DirectoryError(Exception):
    """The directory's settings do not make sense: a one-line reason for the operator."""


class RedisLike(Protocol):
    """The few calls the directory makes (redis.asyncio.Redis), so the announce logic reads without the client."""

    def set(self, name: str, value: str, *, px: int) -> Awaitable[Any]: ...

    def delete(self, *names: str) -> Awaitable[Any]: ...

    def scan(self, cursor: int = 0, match: str | None = None, count: int | None = None) -> Awaitable[Any]: ...

    def aclose(self) -> Awaitable[None]: ...


@dataclass(frozen=True, slots=True)
class DirectorySettings:
    # Where this process says it is reached: the URL peers are given and hash over.
    advertise_url: str
    # How often the key is refreshed and the others read, and how long a key lives unrefreshed.
    interval: float = 1.0
    ttl: float = 3.0
    # The bound of one Redis call (connect, send, answer).
    call_timeout: float = 1.0


def redis_client(url: str, sentinels: str, master: str, call_timeout: float) -> RedisLike:
    """The Redis of `--redis URL`, or the master `--redis-master NAME` of `--redis-sentinel HOST:PORT,...`: the
    Sentinel client asks the sentinels for the master at each new connection, so a promoted replica is found by the
    next round after a failover. Imported here: a supernode without Redis never loads the client."""
    from redis.asyncio import Redis
    from redis.asyncio.sentinel import Sentinel

    bounds: dict[str, Any] = {"socket_timeout": call_timeout, "socket_connect_timeout": call_timeout}
    if url:
        if sentinels:
            raise DirectoryError("give --redis or --redis-sentinel, not both")
        if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise DirectoryError(f"--redis: {url[:100]!r} is not a redis:// URL")
        try:
            client: RedisLike = Redis.from_url(url, decode_responses=True, **bounds)
        except ValueError as exc:
            raise DirectoryError(f"--redis: {exc}") from None
        return client
    if not master:
        raise DirectoryError("--redis-sentinel needs --redis-master NAME (the master the sentinels watch)")
    sentinel = Sentinel(_host_ports(sentinels), sentinel_kwargs=dict(bounds), decode_responses=True, **bounds)
    master_client: RedisLike = sentinel.master_for(master, decode_responses=True, **bounds)
    return master_client


def _host_ports(text: str) -> list[tuple[str, int]]:
    found = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise DirectoryError(f"--redis-sentinel: {item[:100]!r} is not HOST:PORT")
        found.append((host.strip("[]"), int(port)))
    if not found:
        raise DirectoryError("--redis-sentinel: no HOST:PORT given")
    return found


class SupernodeDirectory:
    """This process's announcement and the live set, refreshed by one task this object owns (`start`/`close`)."""

    def __init__(self, redis: RedisLike, settings: DirectorySettings,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.redis = redis
        self.settings = settings
        self.url = settings.advertise_url.rstrip("/")
        self._live: tuple[str, ...] = (self.url,)
        self._clock = clock
        # When the live set was last read from Redis (None: never); the route tells its age.
        self.read_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._reachable = True

    def live(self) -> tuple[str, ...]:
        """The supernodes alive at the last round that reached Redis, sorted, this one always in."""
        return self._live

    def age(self) -> float | None:
        """Seconds since the live set was read (None: Redis was never reached)."""
        return None if self.read_at is None else max(self._clock() - self.read_at, 0.0)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="supernode-directory")

    async def close(self) -> None:
        """Stop announcing and take the key away, so that peers move this process's swarms at once rather than
        after the key's expiry (bounded: a Redis that is away does not hold the stop)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.redis.delete(KEY_PREFIX + self.url), self.settings.call_timeout)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.redis.aclose(), self.settings.call_timeout)

    async def round(self) -> None:
        """Announce once and read the live set; raises on a Redis that is away (the set is then left as it was)."""
        await self.redis.set(KEY_PREFIX + self.url, self.url, px=int(self.settings.ttl * 1000))
        found = {self.url}
        cursor = 0
        while True:
            cursor, keys = await self.redis.scan(cursor, match=KEY_PREFIX + "*", count=1000)
            found.update(str(key)[len(KEY_PREFIX):] for key in keys)
            if not cursor:
                break
        self._live = tuple(sorted(found))
        self.read_at = self._clock()

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.round(), self.settings.call_timeout * 3)
            except (TimeoutError, OSError, _redis_errors()) as exc:
                if self._reachable:
                    log.warning("supernode directory: Redis unreachable (%s); serving the last live set of %d",
                                type(exc).__name__, len(self._live))
                self._reachable = False
            else:
                if not self._reachable:
                    log.info("supernode directory: Redis reachable again; %d supernodes alive", len(self._live))
                self._reachable = True
            await asyncio.sleep(self.settings.interval)


def _redis_errors() -> type[Exception]:
    from redis.exceptions import RedisError

    return RedisError

