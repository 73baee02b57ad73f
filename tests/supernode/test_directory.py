"""The supernode directory (supernode/directory.py) against a real `redis-server`: each process announces itself
with an expiry and reads the others; one that stops is gone at once, one that dies once its key expires; while
Redis is away the last live set stays."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from supernode.directory import DirectoryError, DirectorySettings, SupernodeDirectory, redis_client
from tests.support.redis_servers import SingleRedis

A, B = "http://127.0.0.1:1001", "http://127.0.0.1:1002"




def directory(url: str, redis_url: str, ttl: float = 1.0) -> SupernodeDirectory:
    return SupernodeDirectory(redis_client(redis_url, "", "", 0.5),
                              DirectorySettings(url, interval=0.2, ttl=ttl, call_timeout=0.5))


async def until(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.05)


async def test_each_sees_the_other_and_one_that_stops_is_gone_at_once(redis_server: SingleRedis) -> None:
    first, second = directory(A, redis_server.server.url), directory(B, redis_server.server.url)
    first.start()
    second.start()
    try:
        await until(lambda: first.live() == (A, B) and second.live() == (A, B))
        assert first.age() is not None and first.age() < 1.0  # type: ignore[operator]
        await second.close()
        # Its key taken away at its stop: no wait for the expiry (ttl 1 s here, and the check is sooner).
        await until(lambda: first.live() == (A,), timeout=0.6)
    finally:
        await first.close()
        await second.close()


async def test_one_that_dies_drops_out_once_its_key_expires(redis_server: SingleRedis) -> None:
    first, second = directory(A, redis_server.server.url), directory(B, redis_server.server.url, ttl=1.0)
    first.start()
    second.start()
    try:
        await until(lambda: first.live() == (A, B))
        # A death: the refreshing task ends, the key is not deleted.
        assert second._task is not None
        second._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await second._task
        died = time.monotonic()
        await until(lambda: first.live() == (A,), timeout=3.0)
        assert time.monotonic() - died > 0.5  # it was the expiry, not a delete
    finally:
        await first.close()
        await second.redis.aclose()


async def test_the_last_live_set_stays_while_redis_is_away(redis_server: SingleRedis) -> None:
    first, second = directory(A, redis_server.server.url), directory(B, redis_server.server.url, ttl=1.0)
    first.start()
    second.start()
    try:
        await until(lambda: first.live() == (A, B))
        redis_server.server.kill()
        await asyncio.sleep(2.0)  # past every key's time to live
        assert first.live() == (A, B)
        assert first.age() is not None and first.age() > 1.5  # type: ignore[operator]
    finally:
        started = time.monotonic()
        await first.close()
        await second.close()
        assert time.monotonic() - started < 3.0  # a Redis that is away does not hold the stop


def test_settings_that_make_no_sense_are_refused_with_a_reason() -> None:
    with pytest.raises(DirectoryError, match="not a redis:// URL"):
        redis_client("http://example/", "", "", 1.0)
    with pytest.raises(DirectoryError, match="needs --redis-master"):
        redis_client("", "127.0.0.1:26379", "", 1.0)
    with pytest.raises(DirectoryError, match="is not HOST:PORT"):
        redis_client("", "127.0.0.1", "mymaster", 1.0)
    with pytest.raises(DirectoryError, match="not both"):
        redis_client("redis://127.0.0.1:1/0", "127.0.0.1:26379", "mymaster", 1.0)
