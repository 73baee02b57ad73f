"""Supernode settings, each with its default in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class SchedulerConfig:
    # Parents a child is given; more spreads load, fewer keeps connections down.
    parents_per_child: int = 4
    # Children one peer serves at once; the source's own cap is lower so its upstream pull is not starved.
    peer_fanout: int = 6
    feeder_fanout: int = 4
    # Swarms larger than this pick parents from a random sample of this many members instead of all of them.
    candidate_sample: int = 64
    # A peer that has not sent a heartbeat for this long is dead: it is taken out of every swarm.
    peer_ttl: float = 8.0
    heartbeat_interval: float = 2.0
    # Swarms nobody has touched for this long are forgotten.
    swarm_ttl: float = 3600.0


@dataclass(slots=True)
class SupernodeConfig:
    listen_host: str = "0.0.0.0"
    listen_port: int = 8002
    # Shared secret peers present to join; empty disables the check (single-host and test set-ups).
    join_token: str = ""
    # Longest a sync request waits for news before answering with what there is.
    view_wait: float = 10.0
    scheduler: SchedulerConfig | None = None
