"""Long-polls wait on the notifier: woken by their swarm's news or a change that concerns them, or by their own
timeout, and never left behind."""

from __future__ import annotations

import asyncio
import time

from supernode.notifier import SwarmNotifier

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


async def test_swarm_news_wakes_every_waiter_of_that_swarm_and_only_those() -> None:
    notifier = SwarmNotifier()
    on_a = [asyncio.create_task(notifier.wait(A, f"p{i}", 10.0)) for i in range(3)]
    on_b = asyncio.create_task(notifier.wait(B, "p0", 10.0))
    await asyncio.sleep(0.01)
    notifier.notify(A)
    done, pending = await asyncio.wait([*on_a, on_b], timeout=1.0)
    assert set(done) == set(on_a) and pending == {on_b}
    notifier.notify(B)
    await asyncio.wait_for(on_b, 1.0)
    assert notifier._waiters == {}


async def test_a_change_for_some_members_wakes_those_only() -> None:
    notifier = SwarmNotifier()
    waiters = {peer: asyncio.create_task(notifier.wait(A, peer, 10.0)) for peer in ("p1", "p2", "p3")}
    twice = asyncio.create_task(notifier.wait(A, "p2", 10.0))  # the same member waiting twice
    await asyncio.sleep(0.01)
    notifier.notify_members(A, ["p2", "p9"])
    done, pending = await asyncio.wait([*waiters.values(), twice], timeout=1.0)
    assert done == {waiters["p2"], twice} and pending == {waiters["p1"], waiters["p3"]}
    notifier.notify(A)
    await asyncio.wait_for(asyncio.gather(*pending), 1.0)
    assert notifier._waiters == {}


async def test_a_waiter_returns_after_its_timeout_without_news() -> None:
    notifier = SwarmNotifier()
    started = time.monotonic()
    await notifier.wait(A, "p1", 0.1)
    assert 0.09 <= time.monotonic() - started < 1.0
    assert notifier._waiters == {}


async def test_a_cancelled_waiter_leaves_nothing_behind() -> None:
    # A client that hangs up mid long-poll cancels its request: its future and timer must not pile up.
    notifier = SwarmNotifier()
    waiter = asyncio.create_task(notifier.wait(A, "p1", 10.0))
    await asyncio.sleep(0.01)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert notifier._waiters == {}
    notifier.notify(A)  # nobody left to wake: no error
