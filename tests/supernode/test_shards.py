"""Sharding swarms over supernode processes: every peer picks the same owner, whatever the order of its list,
and a process that is down or has forgotten the peer is handled as one supernode's would be."""

from __future__ import annotations

from typing import Any

import pytest

from supernode.client import JoinRefused, SupernodeUnavailable, UnknownPeer
from supernode.jobs import ProgressReport
from supernode.shards import SupernodeShards, owner_index

URLS = [f"http://10.0.0.{i}:8002" for i in range(1, 5)]


def test_every_peer_picks_the_same_owner_whatever_the_order_and_swarms_spread() -> None:
    digests = [f"sha256:{i:064x}" for i in range(400)]
    owners = [URLS[owner_index(URLS, d)] for d in digests]
    reordered = list(reversed(URLS))
    assert owners == [reordered[owner_index(reordered, d)] for d in digests]
    counts = {url: owners.count(url) for url in URLS}
    assert all(60 <= count <= 140 for count in counts.values()), counts  # about 100 each
    # Removing a process moves only the swarms it owned.
    fewer = URLS[:3]
    for digest, owner in zip(digests, owners, strict=True):
        if owner in fewer:
            assert fewer[owner_index(fewer, digest)] == owner


class Answering:
    def __init__(self, url: str, outcome: BaseException | None = None) -> None:
        self.base_url = url
        self.outcome = outcome
        self.calls = 0

    async def heartbeat(self, peer_id: str, host: Any = None) -> None:
        self.calls += 1
        if self.outcome is not None:
            raise self.outcome


def shards(*clients: Answering) -> SupernodeShards:
    anything: Any = list(clients)
    return SupernodeShards(anything)


async def test_peer_calls_reach_every_process_and_fail_only_when_none_answers() -> None:
    up, down = Answering(URLS[0]), Answering(URLS[1], SupernodeUnavailable("down"))
    await shards(up, down).heartbeat("p")  # one process down: the others still hear from the peer
    assert up.calls == down.calls == 1
    with pytest.raises(SupernodeUnavailable):
        await shards(Answering(URLS[0], SupernodeUnavailable("a")), down).heartbeat("p")
    # One process that forgot the peer (restarted) makes the peer register again, with all of them.
    with pytest.raises(UnknownPeer):
        await shards(up, Answering(URLS[1], UnknownPeer("gone"))).heartbeat("p")
    with pytest.raises(JoinRefused):
        await shards(up, Answering(URLS[1], JoinRefused("token"))).heartbeat("p")


class Polled:
    def __init__(self, url: str) -> None:
        self.base_url = url
        self.asked: list[str] = []

    async def jobs(self, peer_id: str, since: int, wait: float) -> Any:
        self.asked.append(peer_id)
        return None

    async def post_job_progress(self, peer_id: str, report: Any) -> None:
        self.asked.append(peer_id)


async def test_a_hosts_jobs_live_with_the_owner_of_its_peer_id() -> None:
    clients = [Polled(url) for url in URLS]
    anything: Any = clients
    sharded = SupernodeShards(anything)
    hosts = [f"host-{i}" for i in range(40)]
    for host_id in hosts:
        await sharded.jobs(host_id, -1, 0.0)
        await sharded.post_job_progress(host_id, ProgressReport(()))
    for host_id in hosts:
        owner = clients[owner_index(URLS, host_id)]
        assert owner.asked.count(host_id) == 2
        assert all(host_id not in c.asked for c in clients if c is not owner)
    assert sum(bool(c.asked) for c in clients) >= 3  # the hosts spread over the processes


class Listing(Answering):
    """A process that answers its directory (or says it keeps none) and takes registers."""

    def __init__(self, url: str, live: list[str] | None, age: float | None = 0.1) -> None:
        super().__init__(url)
        self.live, self.age, self.registered = live, age, 0

    async def list_supernodes(self) -> Any:
        from supernode.api import SupernodeList
        from supernode.client import NoDirectory

        if self.live is None:
            raise NoDirectory("none")
        return SupernodeList(tuple(self.live), self.age)

    async def register(self, request: Any) -> Any:
        self.registered += 1
        return None


async def test_one_given_process_leads_to_the_live_set_and_the_owners_follow_it() -> None:
    made: dict[str, Listing] = {}

    def make(url: str) -> Any:
        made[url] = Listing(url, URLS[:3])
        return made[url]

    seed = Listing(URLS[0], URLS[:3])
    anything: Any = [seed]
    sharded = SupernodeShards(anything, make)
    assert await sharded.refresh()
    assert sharded.urls == URLS[:3] and set(made) == set(URLS[1:3])
    key = next(f"sha256:{i:064x}" for i in range(100) if owner_index(URLS[:3], f"sha256:{i:064x}") == 2)
    assert sharded.owner(key).base_url == URLS[2]
    # The owner leaves the directory: the swarm's owner is another, and who waits on `moved` is woken.
    import asyncio

    waiting = asyncio.create_task(sharded.moved(key, URLS[2]))
    await asyncio.sleep(0)
    seed.live = URLS[:2]
    assert await sharded.refresh()
    await asyncio.wait_for(waiting, 1.0)
    assert sharded.owner(key).base_url == URLS[owner_index(URLS[:2], key)]
    # A listing from a process that never reached Redis is no live set; one without a directory keeps the list.
    seed.live, seed.age = [URLS[0]], None
    made[URLS[1]].live, made[URLS[1]].age = [URLS[0]], None
    assert not await sharded.refresh() and sharded.urls == URLS[:2]


async def test_a_process_that_does_not_answer_is_left_out_of_the_owners_for_a_while() -> None:
    from supernode.client import SupernodeUnreachable

    now = [0.0]
    up, dead = Answering(URLS[0]), Answering(URLS[1], SupernodeUnreachable("refused"))
    anything: Any = [up, dead]
    sharded = SupernodeShards(anything, clock=lambda: now[0])
    key = next(f"sha256:{i:064x}" for i in range(100) if owner_index(URLS[:2], f"sha256:{i:064x}") == 1)
    assert sharded.owner(key).base_url == dead.base_url
    await sharded.heartbeat("p")
    assert sharded.owner(key).base_url == up.base_url  # left out at once: its swarms move
    now[0] = 6.0
    dead.outcome = None
    await sharded.heartbeat("p")
    assert sharded.owner(key).base_url == dead.base_url  # back after a while, once it answers
    # A process that answers "no" (503, 404) is not left out: only one that gives no answer at all.
    dead.outcome = SupernodeUnavailable("503")
    await sharded.heartbeat("p")
    assert sharded.owner(key).base_url == dead.base_url
