"""The scheduling state alone: no sockets, time passed in."""

from __future__ import annotations

import pytest

from core.pieces import MiB
from supernode.api import ROLE_CHILD, ROLE_FEEDER, UnknownPeer
from supernode.config import SchedulerConfig
from supernode.scheduler import Scheduler

DIGEST = "sha256:" + "ab" * 32
SIZE = 10 * MiB  # three pieces of 4 MiB


def make(n: int, config: SchedulerConfig | None = None, labels: dict[str, dict[str, str]] | None = None) -> Scheduler:
    scheduler = Scheduler(config)
    for i in range(n):
        peer = f"p{i}"
        scheduler.register(peer, f"http://10.0.0.{i}:65002", (labels or {}).get(peer, {}), now=0.0)
    return scheduler


def test_first_member_goes_to_the_source_and_the_next_gets_it_as_parent() -> None:
    scheduler = make(2)
    first = scheduler.join(DIGEST, "p0", SIZE, 0, now=1.0)
    second = scheduler.join(DIGEST, "p1", SIZE, 0, now=1.0)
    assert first.role == ROLE_FEEDER and first.parents == []
    assert second.role == ROLE_CHILD
    assert [p.peer_id for p in second.parents] == ["p0"]
    assert second.piece_size == 4 * MiB and len(second.piece_digests) == 3


def test_exactly_one_source_across_a_crowd() -> None:
    scheduler = make(50)
    roles = [scheduler.join(DIGEST, f"p{i}", SIZE, 0, now=1.0).role for i in range(50)]
    assert roles.count(ROLE_FEEDER) == 1
    # Asking again never makes a second source while the first is alive.
    again = [scheduler.view(DIGEST, f"p{i}", now=2.0).role for i in range(50)]
    assert again.count(ROLE_FEEDER) == 1


def test_parent_links_respect_fanout_and_never_cycle() -> None:
    config = SchedulerConfig(parents_per_child=3, peer_fanout=4, feeder_fanout=2)
    scheduler = make(40, config)
    for i in range(40):
        scheduler.join(DIGEST, f"p{i}", SIZE, 0, now=1.0)
    views = {f"p{i}": scheduler.view(DIGEST, f"p{i}", now=1.0) for i in range(40)}
    children_of: dict[str, int] = {}
    for view in views.values():
        for parent in view.parents:
            children_of[parent.peer_id] = children_of.get(parent.peer_id, 0) + 1
    assert children_of["p0"] <= 2
    assert all(count <= 4 for count in children_of.values())
    # Every child has somebody, and following parents always ends at the source (a DAG rooted there).
    task = scheduler.swarms[DIGEST]
    for peer_id, view in views.items():
        if view.role == ROLE_CHILD:
            assert view.parents, f"{peer_id} has no parent"
            assert all(task.members[p.peer_id].rank < task.members[peer_id].rank for p in view.parents)


def test_only_the_source_may_publish_piece_digests() -> None:
    scheduler = make(2)
    scheduler.join(DIGEST, "p0", SIZE, 0, now=1.0)
    scheduler.join(DIGEST, "p1", SIZE, 0, now=1.0)
    scheduler.report(
        DIGEST, "p1", pieces=0, piece_digests={0: "f" * 64}, done=False, failed=False, bad_parents=[], now=2.0
    )
    assert scheduler.view(DIGEST, "p1", now=2.0).piece_digests[0] == ""
    scheduler.report(
        DIGEST, "p0", pieces=1, piece_digests={0: "a" * 64}, done=False, failed=False, bad_parents=[], now=2.0
    )
    view = scheduler.view(DIGEST, "p1", now=2.0)
    assert view.piece_digests[0] == "a" * 64
    assert view.parents[0].pieces == "1"


def test_a_dead_source_is_replaced_by_a_member_that_asks() -> None:
    config = SchedulerConfig(peer_ttl=5.0)
    scheduler = make(3, config)
    for i in range(3):
        scheduler.join(DIGEST, f"p{i}", SIZE, 0, now=1.0)
    scheduler.heartbeat("p1", now=10.0)
    scheduler.heartbeat("p2", now=10.0)
    assert scheduler.expire(now=10.0) == ["p0"]
    promoted = scheduler.view(DIGEST, "p2", now=10.0)
    assert promoted.role == ROLE_FEEDER
    other = scheduler.view(DIGEST, "p1", now=10.0)
    assert other.role == ROLE_CHILD
    assert [p.peer_id for p in other.parents] == ["p2"]
    with pytest.raises(UnknownPeer):
        scheduler.heartbeat("p0", now=11.0)


def test_finished_members_serve_newcomers_without_a_source() -> None:
    scheduler = make(2)
    scheduler.join(DIGEST, "p0", SIZE, 0, now=1.0)
    scheduler.report(
        DIGEST,
        "p0",
        pieces=0b111,
        piece_digests={0: "a" * 64, 1: "b" * 64, 2: "c" * 64},
        done=True,
        failed=False,
        bad_parents=[],
        now=2.0,
    )
    view = scheduler.join(DIGEST, "p1", SIZE, 0, now=3.0)
    assert view.role == ROLE_CHILD
    assert [(p.peer_id, p.done) for p in view.parents] == [("p0", True)]
    assert not view.feeder_alive


def test_a_reported_bad_parent_is_blocked_for_the_swarm() -> None:
    scheduler = make(3)
    for i in range(3):
        scheduler.join(DIGEST, f"p{i}", SIZE, 0, now=1.0)
    scheduler.report(DIGEST, "p2", pieces=0, piece_digests={}, done=False, failed=False, bad_parents=["p1"], now=2.0)
    assert [p.peer_id for p in scheduler.view(DIGEST, "p2", now=2.0).parents] == ["p0"]
    assert "p1" in scheduler.swarms[DIGEST].blocked
    # Rejoining does not make a blocked peer a parent again, nor the source.
    scheduler.join(DIGEST, "p1", SIZE, 0, now=3.0)
    assert all(p.peer_id != "p1" for p in scheduler.view(DIGEST, "p2", now=3.0).parents)


def test_locality_labels_pick_the_same_rack_first() -> None:
    labels = {
        "p1": {"zone": "a", "rack": "r1"},
        "p2": {"zone": "b", "rack": "r9"},
        "p3": {"zone": "a", "rack": "r1"},
    }
    scheduler = make(4, SchedulerConfig(parents_per_child=1), labels)
    for i in range(4):
        scheduler.join(DIGEST, f"p{i}", SIZE, 0, now=1.0)
    assert [p.peer_id for p in scheduler.view(DIGEST, "p3", now=1.0).parents] == ["p1"]


def test_idle_swarms_are_forgotten() -> None:
    scheduler = make(1, SchedulerConfig(swarm_ttl=100.0, peer_ttl=1e9))
    scheduler.join(DIGEST, "p0", SIZE, 0, now=1.0)
    scheduler.expire(now=50.0)
    assert DIGEST in scheduler.swarms
    scheduler.expire(now=200.0)
    assert DIGEST not in scheduler.swarms


def test_a_member_is_sent_only_the_digests_it_does_not_have() -> None:
    scheduler = make(2)
    scheduler.join(DIGEST, "p0", SIZE, 0, now=1.0)
    scheduler.join(DIGEST, "p1", SIZE, 0, now=1.0)
    scheduler.report(DIGEST, "p0", pieces=0b11, piece_digests={0: "a" * 64, 1: "b" * 64}, done=False,
                     failed=False, bad_parents=[], now=2.0)
    view = scheduler.view(DIGEST, "p1", now=2.0, digests_from=1)
    assert view.digests_from == 1
    assert view.piece_digests == ["b" * 64, ""]


def test_digests_are_news_at_once_in_small_swarms_and_in_batches_in_large_ones() -> None:
    big = 20 * 4 * MiB
    for members, batch in ((10, 1), (3000, 4)):
        scheduler = make(members, SchedulerConfig(peer_ttl=1e9))
        for i in range(members):
            scheduler.join(DIGEST, f"p{i}", big, 0, now=1.0)
        since = scheduler.view(DIGEST, "p1", now=1.0).version
        assert not scheduler.news_for(DIGEST, "p1", since, 0)
        for index in range(batch):
            assert not scheduler.news_for(DIGEST, "p1", since, 0)
            scheduler.report(DIGEST, "p0", pieces=0, piece_digests={index: "a" * 64}, done=False, failed=False,
                             bad_parents=[], now=2.0)
        assert scheduler.news_for(DIGEST, "p1", since, 0)
        # A member that has every digest is woken by changes of its parents only.
        assert not scheduler.news_for(DIGEST, "p1", since, 20)
        scheduler.report(DIGEST, "p0", pieces=0, piece_digests={}, done=False, failed=True, bad_parents=[], now=3.0)
        assert scheduler.news_for(DIGEST, "p1", since, 20)


def test_a_change_wakes_the_members_it_concerns_and_a_lost_source_wakes_everyone() -> None:
    scheduler = make(12, SchedulerConfig(parents_per_child=2, peer_ttl=1e9))
    for i in range(12):
        scheduler.join(DIGEST, f"p{i}", SIZE, 0, now=1.0)
    seen = {f"p{i}": scheduler.view(DIGEST, f"p{i}", now=1.0).version for i in range(1, 12)}
    task = scheduler.swarms[DIGEST]
    assert not task.short - {"p1"}, "everyone but p1 (only p0 ranks before it) has both parents"
    scheduler.take_wakes()
    # p3 leaves: news for its children (they lost a parent) and for p1, who is short of parents; nobody else.
    orphans = set(task.children["p3"])
    scheduler.report(DIGEST, "p3", pieces=0, piece_digests={}, done=False, failed=True, bad_parents=[], now=2.0)
    assert scheduler.take_wakes() == {DIGEST: orphans | {"p1"}}
    news = {p for p, since in seen.items() if p != "p3" and scheduler.news_for(DIGEST, p, since, 0)}
    assert news == orphans | {"p1"}
    # Their views move to a new version; those of the others stay where they were.
    for peer in seen.keys() - {"p3"}:
        version = scheduler.view(DIGEST, peer, now=2.0).version
        assert (version > seen[peer]) == (peer in news)
        seen[peer] = version
    # New digests are news for everyone that lacks them.
    scheduler.report(DIGEST, "p0", pieces=1, piece_digests={0: "a" * 64}, done=False, failed=False, bad_parents=[],
                     now=3.0)
    assert scheduler.take_wakes() == {DIGEST: None}
    assert all(scheduler.news_for(DIGEST, p, since, 0) for p, since in seen.items() if p != "p3")
    # The source leaves: everyone must hear of it, since the first to ask becomes the source.
    scheduler.report(DIGEST, "p0", pieces=0, piece_digests={}, done=False, failed=True, bad_parents=[], now=4.0)
    assert scheduler.take_wakes() == {DIGEST: None}
    assert all(scheduler.news_for(DIGEST, p, since, 1) for p, since in seen.items() if p not in ("p0", "p3"))
    # Someone no longer in the swarm has news at once: that it must join again.
    assert scheduler.news_for(DIGEST, "p3", seen["p1"], 1)


def test_waiting_counts_the_members_that_still_need_pieces_besides_the_asker() -> None:
    scheduler = make(3)
    scheduler.join(DIGEST, "p0", SIZE, 0, now=1.0)
    assert scheduler.waiting(DIGEST, "p0") == 0  # a source alone: nobody waits for its digests
    scheduler.join(DIGEST, "p1", SIZE, 0, now=1.0)
    scheduler.join(DIGEST, "p2", SIZE, 0, now=1.0)
    assert scheduler.waiting(DIGEST, "p0") == 2
    everything = (1 << 3) - 1
    digests = {i: f"{i:064x}" for i in range(3)}
    scheduler.report(DIGEST, "p0", pieces=everything, piece_digests=digests, done=True, failed=False,
                     bad_parents=[], now=2.0)
    scheduler.report(DIGEST, "p1", pieces=everything, piece_digests={}, done=True, failed=False,
                     bad_parents=[], now=2.0)
    assert scheduler.waiting(DIGEST, "p0") == 1  # only p2 is still fetching
    assert scheduler.waiting(DIGEST, "p2") == 0
    scheduler.report(DIGEST, "p2", pieces=0, piece_digests={}, done=False, failed=True, bad_parents=[], now=3.0)
    assert scheduler.waiting(DIGEST, "p0") == 0  # p2 gave up and left
    assert scheduler.waiting("sha256:" + "cd" * 32, "p0") == 0  # no such swarm
