"""Long-polled views wait here until what they wait for concerns them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


class SwarmNotifier:
    """Wakes the view requests waiting on a swarm: all of them (new digests), or the members a change concerns.

    A waiter is one future with one timer: `asyncio.wait_for` on a shared Event would cost each waiting request a
    task of its own, and a swarm of hundreds wakes all its waiters per digest. Waiters are kept by member, so that a
    change that concerns a few members (one finished: those short of parents) wakes those few, not the swarm.
    """

    def __init__(self) -> None:
        self._waiters: dict[str, dict[str, set[asyncio.Future[None]]]] = {}

    def notify(self, digest: str) -> None:
        for waiters in self._waiters.pop(digest, {}).values():
            _wake_all(waiters)

    def notify_members(self, digest: str, peer_ids: Iterable[str]) -> None:
        swarm = self._waiters.get(digest)
        if swarm is None:
            return
        for peer_id in peer_ids:
            _wake_all(swarm.pop(peer_id, ()))
        if not swarm:
            del self._waiters[digest]

    def notify_everyone(self) -> None:
        """Wake every waiting view (the supernode is stopping)."""
        waiting, self._waiters = self._waiters, {}
        for swarm in waiting.values():
            for waiters in swarm.values():
                _wake_all(waiters)

    async def wait(self, digest: str, peer_id: str, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        waiters = self._waiters.setdefault(digest, {}).setdefault(peer_id, set())
        waiters.add(waiter)
        timer = loop.call_later(timeout, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            waiters.discard(waiter)
            swarm = self._waiters.get(digest)
            if not waiters and swarm is not None and swarm.get(peer_id) is waiters:
                del swarm[peer_id]
                if not swarm:
                    del self._waiters[digest]


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _wake_all(waiters: Iterable[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        _wake(waiter)
