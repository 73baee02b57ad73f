"""`damselfly simulate`: the supernode's scheduler driven by thousands of simulated peers, no sockets.

The model follows what real peers send (peer/download.py, peer/reporter.py), in steps of 0.25 s of simulated
time (the reporter's batching delay):
- every host pulls one image (`layers` blobs, all at once, like containerd); hosts start over `window` seconds;
- each download joins its blob's swarm; the source pulls pieces from the upstream (whose link all sources
  share), children take pieces their parents hold whose digests the source has published, at their link's rate;
- every member with news reports it once per step (the source with its piece digests); a finished one reports done;
- a waiting child is woken as the server's long-poll sync is (by new digests, or by a change that concerns it:
  `Scheduler.take_wakes`); it asks `news_for` and, if there is news (or 5 s passed), takes a view; it can only
  fetch pieces whose digests it has seen in a view; a child without progress for 20 s falls back to the
  upstream, as real peers do;
- hosts heartbeat every 2 s; `expire` runs every second; a share of hosts (`churn`) dies mid-pull, and children
  report a dead parent as bad, as a failed piece fetch makes them do.
Bursts of changes within one step are coalesced into one wake-up per waiting child, so real peers (whose round
trip is well under a step) ask at least as often as simulated here: the figures are a lower bound of the load.

Only the time spent inside Scheduler calls is measured (perf_counter around each); the simulation's own
bookkeeping is not. Memory is measured separately with tracemalloc on a scheduler built to the same scale.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import random
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from supernode.api import ROLE_FEEDER, SwarmView, UnknownPeer
from supernode.scheduler import Scheduler, UnknownSwarm

from .sim_memory import MemoryFigures, measure_memory
from .sim_model import Download, SimSettings, build_plan, peer_id

__all__ = ["CallStats", "SimReport", "SimSettings", "simulate"]

Log = Callable[[str], None]
T = TypeVar("T")
P = ParamSpec("P")
STEP = 0.25
VIEW_WAIT = 5.0
STALL_TIMEOUT = 20.0
HEARTBEAT = 2.0


@dataclass(slots=True)
class CallStats:
    count: int
    seconds: float
    mean_us: float
    p50_us: float
    p99_us: float
    max_us: float


@dataclass(slots=True)
class SimReport:
    settings: SimSettings
    simulated_seconds: float
    wall_seconds: float
    hosts_done: int
    hosts_dead: int
    downloads: int
    fallbacks: int
    errors: int
    # Share of children's views answered with fewer parents than `parents_per_child`.
    short_view_share: float
    upstream_ratio: float
    calls: dict[str, CallStats]
    decisions_counter: int
    memory: MemoryFigures
    profile: list[tuple[str, int, float, float]] = field(default_factory=list)

    @property
    def scheduler_seconds(self) -> float:
        return sum(c.seconds for c in self.calls.values())

    @property
    def decisions_per_second(self) -> float:
        """Join and view answers (each decides a peer's role and parents) per second of scheduler time."""
        calls = [self.calls[k] for k in ("join", "view") if k in self.calls]
        seconds = sum(c.seconds for c in calls)
        return sum(c.count for c in calls) / seconds if seconds else 0.0

    @property
    def busy_share(self) -> float:
        """Scheduler time per simulated second: above 1.0, one supernode process cannot keep up."""
        return self.scheduler_seconds / self.simulated_seconds if self.simulated_seconds else 0.0

    @property
    def requests_per_simulated_second(self) -> float:
        total = sum(c.count for c in self.calls.values())
        return total / self.simulated_seconds if self.simulated_seconds else 0.0


class Timer:
    """Durations of each kind of scheduler call."""

    def __init__(self) -> None:
        self.samples: dict[str, array[float]] = {}

    def add(self, kind: str, seconds: float) -> None:
        samples = self.samples.get(kind)
        if samples is None:
            samples = self.samples[kind] = array("d")
        samples.append(seconds)

    def stats(self) -> dict[str, CallStats]:
        out = {}
        for kind, samples in self.samples.items():
            ordered = sorted(samples)
            n = len(ordered)
            out[kind] = CallStats(
                count=n,
                seconds=sum(ordered),
                mean_us=sum(ordered) / n * 1e6,
                p50_us=ordered[n // 2] * 1e6,
                p99_us=ordered[min(n - 1, int(n * 0.99))] * 1e6,
                max_us=ordered[-1] * 1e6,
            )
        return out


class Simulation:
    def __init__(self, settings: SimSettings) -> None:
        self.s = settings
        self.rng = random.Random(settings.seed)  # noqa: S311 (a seeded, reproducible simulation)
        self.scheduler = Scheduler()
        self.timer = Timer()
        self.swarms, self.downloads, self.death = build_plan(settings, self.rng)
        self.alive = [True] * settings.hosts
        self.fallbacks = 0
        self.errors = 0
        # Views that gave a child fewer parents than it asks for: each of those scanned the whole swarm.
        self.child_views = 0
        self.short_views = 0
        self.upstream_pieces = 0
        self.now = 0.0

    # --- timed calls into the scheduler --------------------------------------------------------------

    def _call(self, kind: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        except (UnknownPeer, UnknownSwarm):
            self.errors += 1
            return None
        finally:
            self.timer.add(kind, time.perf_counter() - start)

    def run(self) -> float:
        s = self.s
        for host in range(s.hosts):
            labels = {"zone": f"z{host % 3}", "rack": f"r{host % 40}"}
            self._call("register", self.scheduler.register, peer_id(host), "http://x", labels, 0.0)
        pending = sorted((d for d in self.downloads if d.start < float("inf")), key=lambda d: d.start, reverse=True)
        active: list[Download] = []
        step = 0
        while (pending or active) and self.now < s.max_seconds:
            while pending and pending[-1].start <= self.now:
                download = pending.pop()
                if self.alive[download.host]:
                    self._join(download)
                    active.append(download)
            self._deaths(active)
            self._progress(active)
            self._reports(active)
            for d in active:
                if d.role == "done" and d.follow is not None and self.alive[d.host]:
                    d.follow.start = self.now
                    self._join(d.follow)
                    active.append(d.follow)
            active = [d for d in active if d.role != "done" and self.alive[d.host]]
            self._views(active)
            if step % int(HEARTBEAT / STEP) == 0:
                for host in range(s.hosts):
                    if self.alive[host]:
                        self._call("heartbeat", self.scheduler.heartbeat, peer_id(host), self.now)
            if step % int(1.0 / STEP) == 0:
                self._call("expire", self.scheduler.expire, self.now)
            self.now += STEP
            step += 1
        return self.now

    def _join(self, d: Download) -> None:
        swarm = self.swarms[d.swarm]
        view = self._call("join", self.scheduler.join, swarm.digest, d.peer_id, swarm.size, 0, self.now)
        d.last_progress = self.now
        swarm.members[d.peer_id] = d
        if view is not None:
            self._apply_view(d, view)

    def _apply_view(self, d: Download, view: SwarmView) -> None:
        d.role = "source" if view.role == ROLE_FEEDER else "child"
        if d.role == "child":
            self.child_views += 1
            self.short_views += len(view.parents) < self.scheduler.config.parents_per_child
        d.parents = [p.peer_id for p in view.parents]
        d.seen_version = view.version
        d.last_view = self.now
        # Views carry the digests from `digests_from` on; the peer counts those known from the start.
        if view.digests_from <= d.digests_known:
            known = d.digests_known
            while known - view.digests_from < len(view.piece_digests) and view.piece_digests[known - view.digests_from]:
                known += 1
            d.digests_known = known

    def _deaths(self, active: list[Download]) -> None:
        for d in active:
            if self.alive[d.host] and self.death[d.host] <= self.now:
                self.alive[d.host] = False

    def _progress(self, active: list[Download]) -> None:
        s = self.s
        from_upstream = sum(1 for d in active if d.role in ("source", "fallback") and self.alive[d.host])
        per_host: dict[int, int] = {}
        for d in active:
            per_host[d.host] = per_host.get(d.host, 0) + 1
        upstream_share = s.upstream_mbit * 1e6 / 8 / max(from_upstream, 1)
        for d in active:
            if not self.alive[d.host]:
                continue
            swarm = self.swarms[d.swarm]
            rate = s.host_mbit * 1e6 / 8 / per_host[d.host]
            if d.role in ("source", "fallback"):
                rate = min(rate, upstream_share)
                wanted = swarm.complete & ~d.have
            else:
                held = 0
                for parent in d.parents:
                    other = swarm.members.get(parent)
                    if other is not None and self.alive[other.host]:
                        held |= other.have
                    elif parent not in d.bad:
                        d.bad.append(parent)
                wanted = held & ((1 << d.digests_known) - 1) & ~d.have
            d.credit += rate * STEP / swarm.piece_size
            taken = 0
            while wanted and d.credit >= 1.0:
                low = wanted & -wanted
                d.have |= low
                wanted ^= low
                d.credit -= 1.0
                taken += 1
            if d.role in ("source", "fallback"):
                self.upstream_pieces += taken
            if taken:
                d.last_progress = self.now
            else:
                d.credit = min(d.credit, 1.0)
                if d.role == "child" and self.now - d.last_progress > STALL_TIMEOUT:
                    d.role = "fallback"
                    self.fallbacks += 1

    def _reports(self, active: list[Download]) -> None:
        for d in active:
            if not self.alive[d.host] or (d.have == d.reported and not d.bad):
                continue
            swarm = self.swarms[d.swarm]
            new = d.have & ~d.reported
            digests = {}
            if d.role == "source":
                digests = {i: swarm.piece_digest(i) for i in range(swarm.count) if new >> i & 1}
            done = d.have == swarm.complete
            if not digests and not done and not d.bad and self.now - d.last_report < self.s.report_interval - 1e-9:
                continue
            bad, d.bad = d.bad, []
            d.reported = d.have
            d.last_report = self.now
            self._call(
                "report", self.scheduler.report, swarm.digest, d.peer_id, pieces=d.have, piece_digests=digests,
                done=done, failed=False, bad_parents=bad, now=self.now,
            )
            if done:
                d.role = "done"

    def _views(self, active: list[Download]) -> None:
        """Waiting children whose sync would answer now: woken by a change and with news, or timed out."""
        # Whom the server would wake for this step's changes: every waiter of a swarm (new digests, a new source),
        # or the members a change concerns; each woken one checks for news of its own.
        wakes = self.scheduler.take_wakes()
        for d in active:
            if d.role != "child":
                continue
            digest = self.swarms[d.swarm].digest
            if digest not in self.scheduler.swarms:
                continue
            answer = self.now - d.last_view >= VIEW_WAIT
            if not answer and digest in wakes:
                woken = wakes[digest]
                if woken is None or d.peer_id in woken:
                    answer = bool(
                        self._call("news", self.scheduler.news_for, digest, d.peer_id, d.seen_version, d.digests_known)
                    )
            if answer:
                view = self._call("view", self.scheduler.view, digest, d.peer_id, self.now, d.digests_known)
                if view is not None:
                    self._apply_view(d, view)


def simulate(settings: SimSettings, *, profile: bool = False, log: Log = print) -> SimReport:
    log(f"simulate: {settings.hosts} hosts, {settings.swarms} swarms, {settings.layers} blobs per image")
    memory = measure_memory(settings)
    log(f"  memory: {memory.per_peer:.0f} B per peer, {memory.per_swarm:.0f} B per swarm, "
        f"{memory.per_member:.0f} B per member")
    sim = Simulation(settings)
    profiler = cProfile.Profile() if profile else None
    wall = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    simulated = sim.run()
    if profiler is not None:
        profiler.disable()
    wall = time.perf_counter() - wall
    unique_pieces = sum(swarm.count for swarm in sim.swarms)
    unfinished = {d.host for d in sim.downloads if d.role != "done"}
    hosts_done = sum(1 for h in range(settings.hosts) if sim.alive[h] and h not in unfinished)
    report = SimReport(
        settings=settings,
        simulated_seconds=simulated,
        wall_seconds=wall,
        hosts_done=hosts_done,
        hosts_dead=sim.alive.count(False),
        downloads=len(sim.downloads),
        fallbacks=sim.fallbacks,
        errors=sim.errors,
        short_view_share=sim.short_views / max(sim.child_views, 1),
        upstream_ratio=sim.upstream_pieces / unique_pieces,
        calls=sim.timer.stats(),
        decisions_counter=sim.scheduler.decisions,
        memory=memory,
        profile=_hottest(profiler) if profiler is not None else [],
    )
    log(f"  {simulated:.0f} simulated s in {wall:.0f} s; scheduler busy {report.busy_share:.2f} s per simulated s; "
        f"{report.decisions_per_second:,.0f} decisions/s; {report.fallbacks} fallbacks")
    return report


def _hottest(profiler: cProfile.Profile, limit: int = 15) -> list[tuple[str, int, float, float]]:
    stats = pstats.Stats(profiler, stream=io.StringIO())
    rows = []
    for (filename, line, name), (_, calls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        short = filename.split("/damselfly/")[-1].split("/main/")[-1]
        rows.append((f"{short}:{line} {name}", int(calls), float(tottime), float(cumtime)))
    rows.sort(key=lambda r: r[2], reverse=True)
    return rows[:limit]


