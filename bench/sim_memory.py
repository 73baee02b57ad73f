"""Memory the scheduler holds per peer, per swarm and per swarm member, measured with tracemalloc.

A scheduler is built to the simulation's scale step by step (hosts registered; one member per swarm; every
other member; the source's piece digests and half of every member's pieces reported), and the growth of traced
memory at each step is divided by what the step added.
"""

from __future__ import annotations

import gc
import random
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

from supernode.scheduler import Scheduler

from .sim_model import SimSettings, build_plan


@dataclass(slots=True)
class MemoryFigures:
    per_peer: float
    # A swarm with one member and no piece digests yet.
    per_swarm: float
    per_member: float
    # The source's published piece digests and members' piece masks, per swarm.
    per_swarm_progress: float
    total: int
    peak: int


def measure_memory(settings: SimSettings) -> MemoryFigures:
    rng = random.Random(settings.seed)  # noqa: S311 (a seeded, reproducible simulation)
    swarms, downloads, _ = build_plan(settings, rng)
    scheduler = Scheduler()
    gc.collect()
    tracemalloc.start()
    try:
        base = _traced()
        for host in range(settings.hosts):
            labels = {"zone": f"z{host % 3}", "rack": f"r{host % 40}"}
            scheduler.register(f"host-{host:05d}-0123abcd", f"http://10.{host >> 16}.{host >> 8 & 255}.{host & 255}"
                               ":65002", labels, 0.0)
        peers = _traced()
        firsts: dict[int, str] = {}
        for d in downloads:
            if d.swarm not in firsts:
                firsts[d.swarm] = d.peer_id
                scheduler.join(swarms[d.swarm].digest, d.peer_id, swarms[d.swarm].size, 0, 1.0)
        one_each = _traced()
        others = [d for d in downloads if firsts.get(d.swarm) != d.peer_id]
        for d in others:
            scheduler.join(swarms[d.swarm].digest, d.peer_id, swarms[d.swarm].size, 0, 1.0)
        members = _traced()
        for index, swarm in enumerate(swarms):
            if index in firsts:
                digests = {i: swarm.piece_digest(i) for i in range(swarm.count)}
                _report(scheduler.report, swarm.digest, firsts[index], swarm.complete, digests)
        for d in others:
            swarm = swarms[d.swarm]
            _report(scheduler.report, swarm.digest, d.peer_id, swarm.complete >> (swarm.count // 2), {})
        progress = _traced()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return MemoryFigures(
        per_peer=(peers - base) / max(settings.hosts, 1),
        per_swarm=(one_each - peers) / max(len(firsts), 1),
        per_member=(members - one_each) / max(len(others), 1),
        per_swarm_progress=(progress - members) / max(len(firsts), 1),
        total=progress - base,
        peak=peak - base,
    )


def _traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def _report(report: Callable[..., None], digest: str, peer: str, pieces: int, digests: dict[int, str]) -> None:
    report(digest, peer, pieces=pieces, piece_digests=digests, done=False, failed=False, bad_parents=[], now=2.0)
