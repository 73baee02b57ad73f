"""The supernode's load generator: simulated peers playing the supernode's HTTP protocol, in one process.

`sn_bench` starts it as a process of its own (`python -m bench.sn_load SETTINGS_JSON`), next to one real
`damselfly supernode`, and reads one JSON document from its stdout. The requests are those a real peer sends
(supernode/client.py, peer/download.py, peer/reporter.py, peer/service.py), over keep-alive connections
(`http1`). Phases, in this order:

- register, join: every host registers (its bound id and its secret, supernode/identity.py), then joins `layers`
  of the `swarms` swarms, as fast as the supernode answers `concurrency` connections (the first joiner of a swarm
  is told to be its source). Every later request about a host carries the credential its register was answered,
  as a header line made once per host;
- heartbeat, report, view: closed loops, `concurrency` connections each sending one kind back to back for
  `seconds`: heartbeats, children's piece counts, and views answered at once (`since` already passed);
- wake: every child long-polls its swarm's view (`since`, `wait`, `from` as peers send them) while each source
  reports one piece digest at a time, the next once all its children have the last: the long-poll at its most
  expensive (a wake-up per digest) and the latency from a digest's report to the views that carry it;
- play: the protocol at the peers' own pace: `play_hosts` hosts join `layers` of `play_swarms` fresh swarms over
  `play_window` seconds; sources cut a piece every `piece_interval` and report its digest at once; children
  long-poll, take a piece as soon as its digest is known, report their pieces batched (the reporter's
  `BATCH_DELAY`) and done at the end; every host heartbeats every 2 s.

Between phases every host heartbeats once, outside the measured windows, so no host expires while a phase does
not touch it. The supernode's CPU time (read from /proc) and the generator's own are taken at each phase's edges.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from core.pieces import choose_piece_size
from peer.reporter import BATCH_DELAY, URGENT_INTERVAL
from peer.swarm_fetch import VIEW_WAIT
from supernode import routes
from supernode.api import ROLE_FEEDER, mask_to_hex
from supernode.identity import CREDENTIAL_HEADER, bound_peer_id

from .http1 import Client, HttpError
from .procs import cpu_seconds

HEARTBEAT_INTERVAL = 2.0
PIECE_SIZE = 4 << 20
ERROR_BACKOFF = 0.1
# The supernode answers a report with how many members still need pieces (200), or, before it told, with 204.
REPORTED = (200, 204)
Expect = int | tuple[int, ...]
# Longest a digest may take to reach every child before the phase gives up on it (and counts an error).
WAKE_TIMEOUT = 30.0
# Kinds of request, as the report names them.
KINDS = ("register", "join", "heartbeat", "report", "digests", "view", "long-poll")


@dataclass(frozen=True, slots=True)
class LoadSettings:
    url: str = "http://127.0.0.1:8002"
    supernode_pid: int = 0
    hosts: int = 1000
    swarms: int = 10
    layers: int = 5
    pieces: int = 16
    concurrency: int = 64
    seconds: float = 3.0
    wake_digests: int = 2
    play_hosts: int = 100
    play_swarms: int = 5
    play_pieces: int = 16
    piece_interval: float = 0.5
    play_window: float = 2.0
    seed: int = 1


@dataclass(slots=True)
class Latency:
    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, samples: list[float]) -> Latency:
        if not samples:
            return cls(0, 0.0, 0.0, 0.0)
        ordered = sorted(samples)
        n = len(ordered)
        return cls(n, ordered[n // 2] * 1e3, ordered[min(n - 1, int(n * 0.99))] * 1e3, ordered[-1] * 1e3)


@dataclass(slots=True)
class PhaseFigures:
    name: str
    wall_seconds: float
    supernode_cpu: float
    generator_cpu: float
    # Answered requests by kind, with their round-trip times.
    requests: dict[str, Latency]
    errors: dict[str, int]
    error_samples: list[str] = field(default_factory=list)
    # From a source's digest report to each child's view that carried the digest (wake and play only).
    wake: Latency | None = None
    # Digests children learned against digests they should have learned (every child, every digest).
    delivered: int = 0
    expected: int = 0

    @property
    def answered(self) -> int:
        return sum(r.count for r in self.requests.values())

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> PhaseFigures:
        wake = body.pop("wake")
        requests = {k: Latency(**v) for k, v in body.pop("requests").items()}
        return cls(requests=requests, wake=Latency(**wake) if wake else None, **body)


class Recorder:
    """Round trips by kind; anything but the expected status is an error, kept with a few samples."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}
        self.errors: dict[str, int] = {}
        self.error_samples: list[str] = []

    async def call(
        self, client: Client, kind: str, method: str, path: str, body: Any = None, expect: Expect = 200,
        headers: bytes = b"",
    ) -> bytes | None:
        raw = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        start = time.perf_counter()
        try:
            status, answer = await client.request(method, path, raw, headers)
        except HttpError as exc:
            self.fail(kind, f"{kind}: {exc}")
            # A broken connection or a refused one: no tight loop of failures in a closed loop.
            await asyncio.sleep(ERROR_BACKOFF)
            return None
        if status != expect and (isinstance(expect, int) or status not in expect):
            self.fail(kind, f"{kind} {method} {path[:80]}: {status} {answer[:200]!r}")
            return None
        self.samples.setdefault(kind, []).append(time.perf_counter() - start)
        return answer

    def fail(self, kind: str, message: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if len(self.error_samples) < 5:
            self.error_samples.append(message)


@dataclass(slots=True)
class Member:
    """One host's membership of one swarm, as the generator tracks it."""

    host: int
    swarm: int
    source: bool = False
    version: int = -1
    known: int = 0
    pieces: int = 0


@dataclass(slots=True)
class Swarm:
    digest: str
    pieces: int
    members: list[Member] = field(default_factory=list)
    # When the source sent the report carrying each digest (perf_counter).
    reported_at: dict[int, float] = field(default_factory=dict)
    # Children that know each digest, and an event per digest set once all do (wake phase).
    learned: dict[int, int] = field(default_factory=dict)
    everyone_knows: dict[int, asyncio.Event] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return self.pieces * PIECE_SIZE

    def piece_digest(self, index: int) -> str:
        return hashlib.sha256(f"{self.digest}/{index}".encode()).hexdigest()

    def children(self) -> list[Member]:
        return [m for m in self.members if not m.source]


def request(
    rec: Recorder, kind: str, method: str, path: str, body: Any = None, expect: Expect = 200, headers: bytes = b""
) -> Callable[[Client], Awaitable[object]]:
    """One request, to be sent on whichever connection a closed loop's worker holds."""
    return lambda client: rec.call(client, kind, method, path, body, expect, headers)


@dataclass(slots=True)
class Host:
    """A simulated host's identity, and what its requests carry, made once: the bound peer id, the secret it
    commits to, the header line of the credential its register was answered, and its heartbeat path."""

    peer_id: str
    secret: str
    heartbeat_path: str
    credential: bytes = b""

    @classmethod
    def make(cls, index: int) -> Host:
        secret = secrets.token_urlsafe(16)
        peer_id = bound_peer_id(f"load-{index:05d}", secret)
        return cls(peer_id, secret, routes.HEARTBEAT.url(peer_id=peer_id))

    def answered(self, credential: str) -> None:
        self.credential = f"{CREDENTIAL_HEADER}: {credential}\r\n".encode()


class LoadGenerator:
    def __init__(self, settings: LoadSettings) -> None:
        self.s = settings
        parts = urlsplit(settings.url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.rng = random.Random(settings.seed)  # noqa: S311 -- load shapes, not secrets
        # Each host has its own connections, as each peer has its own httpx client.
        self.clients = [Client(self.host, self.port) for _ in range(settings.hosts)]
        self.hosts = [Host.make(index) for index in range(settings.hosts)]
        run = f"{time.time_ns()}"
        self.swarms = [self._swarm(f"{run}/{i}", settings.pieces) for i in range(settings.swarms)]
        self.play_swarms = [self._swarm(f"{run}/play/{i}", settings.play_pieces) for i in range(settings.play_swarms)]

    @staticmethod
    def _swarm(name: str, pieces: int) -> Swarm:
        assert choose_piece_size(pieces * PIECE_SIZE) == PIECE_SIZE
        return Swarm("sha256:" + hashlib.sha256(name.encode()).hexdigest(), pieces)

    async def run(self) -> list[PhaseFigures]:
        phases = [
            ("register", self._register),
            ("join", self._join),
            ("heartbeat", self._heartbeats),
            ("report", self._reports),
            ("view", self._views),
            ("wake", self._wake),
            ("play", self._play),
        ]
        figures = []
        try:
            for name, body in phases:
                if name not in ("register", "join"):
                    await self._keep_alive()
                figures.append(await self._measure(name, body))
                if name in ("register", "join") and figures[-1].errors:
                    # Every later phase needs the hosts and swarms: measuring them would only count failures.
                    raise HttpError(f"{name} failed: {figures[-1].error_samples}")
        finally:
            for client in self.clients:
                client.close()
        return figures

    async def _measure(self, name: str, body: Callable[[Recorder], Awaitable[PhaseFigures | None]]) -> PhaseFigures:
        recorder = Recorder()
        pid = self.s.supernode_pid
        cpu, own, wall = cpu_seconds(pid) if pid else 0.0, time.process_time(), time.perf_counter()
        extra = await body(recorder)
        figures = PhaseFigures(
            name=name,
            wall_seconds=time.perf_counter() - wall,
            supernode_cpu=(cpu_seconds(pid) - cpu) if pid else 0.0,
            generator_cpu=time.process_time() - own,
            requests={kind: Latency.of(samples) for kind, samples in recorder.samples.items()},
            errors=recorder.errors,
            error_samples=recorder.error_samples,
        )
        if extra is not None:
            figures.wake, figures.delivered, figures.expected = extra.wake, extra.delivered, extra.expected
        return figures

    # --- closed loops ---------------------------------------------------------------------------------

    async def _closed_loop(self, calls: Iterator[Callable[[Client], Awaitable[object]]], seconds: float) -> None:
        """`concurrency` workers, each on its own connection, taking calls until they or the time run out."""
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            client = Client(self.host, self.port)
            try:
                for call in calls:
                    await call(client)
                    if time.perf_counter() > deadline:
                        return
            finally:
                client.close()

        await asyncio.gather(*(worker() for _ in range(self.s.concurrency)))

    def view_path(self, swarm: Swarm, member: Member, since: int, wait: float) -> str:
        return (
            f"{routes.VIEW.url(digest=swarm.digest)}?peer_id={self.hosts[member.host].peer_id}&since={since}"
            f"&wait={wait:g}&from={member.known}"
        )

    async def _register(self, rec: Recorder) -> None:
        def call(host: int) -> Callable[[Client], Awaitable[object]]:
            identity = self.hosts[host]
            body = {
                "peer_id": identity.peer_id,
                "upload_port": 40000 + host % 20000,
                "advertise_host": f"10.{host >> 16 & 255}.{host >> 8 & 255}.{host & 255}",
                "labels": {"zone": f"z{host % 3}", "rack": f"r{host % 40}"},
                "peer_secret": identity.secret,
            }

            async def register(client: Client) -> None:
                raw = await rec.call(client, "register", "POST", routes.REGISTER.url(), body)
                if raw is not None:
                    identity.answered(json.loads(raw)["credential"])

            return register

        await self._closed_loop((call(h) for h in range(self.s.hosts)), math.inf)

    async def _join(self, rec: Recorder) -> None:
        for host in range(self.s.hosts):
            for layer in range(self.s.layers):
                swarm = self.swarms[(host + layer) % len(self.swarms)]
                swarm.members.append(Member(host, self.swarms.index(swarm)))
        # Hosts join in a shuffled order, as they would at once, but the first member of each swarm first, so
        # that every swarm has its source before its children ask.
        firsts = [(swarm, swarm.members[0]) for swarm in self.swarms if swarm.members]
        rest = [(swarm, m) for swarm in self.swarms for m in swarm.members[1:]]
        self.rng.shuffle(rest)

        def call(swarm: Swarm, member: Member) -> Callable[[Client], Awaitable[object]]:
            async def join(client: Client) -> None:
                view = await self._join_one(rec, client, swarm, member)
                if view is not None:
                    member.source = view["role"] == ROLE_FEEDER

            return join

        await self._closed_loop((call(s, m) for s, m in firsts), math.inf)
        await self._closed_loop((call(s, m) for s, m in rest), math.inf)

    async def _join_one(self, rec: Recorder, client: Client, swarm: Swarm, member: Member) -> dict[str, Any] | None:
        host = self.hosts[member.host]
        body = {"peer_id": host.peer_id, "size": swarm.size, "pieces": mask_to_hex(member.pieces)}
        raw = await rec.call(client, "join", "POST", routes.JOIN.url(digest=swarm.digest), body, 200, host.credential)
        if raw is None:
            return None
        view: dict[str, Any] = json.loads(raw)
        self._take_view(swarm, member, view)
        return view

    async def _keep_alive(self) -> None:
        """Every host heartbeats once (not measured), so nobody expires in a phase that does not use it."""
        rec = Recorder()
        calls = (self._heartbeat_call(rec, host) for host in range(self.s.hosts))
        await self._closed_loop(calls, math.inf)

    def _heartbeat_call(self, rec: Recorder, host: int) -> Callable[[Client], Awaitable[object]]:
        identity = self.hosts[host]
        return request(rec, "heartbeat", "POST", identity.heartbeat_path, expect=204, headers=identity.credential)

    async def _heartbeats(self, rec: Recorder) -> None:
        def calls() -> Iterator[Callable[[Client], Awaitable[object]]]:
            while True:
                for host in range(self.s.hosts):
                    yield self._heartbeat_call(rec, host)

        await self._closed_loop(calls(), self.s.seconds)

    async def _reports(self, rec: Recorder) -> None:
        children = [(swarm, m) for swarm in self.swarms for m in swarm.children()]

        def calls() -> Iterator[Callable[[Client], Awaitable[object]]]:
            # Children hold a few pieces each (parents' holdings matter to the scheduler's ranking only).
            while True:
                for swarm, member in children:
                    member.pieces |= 1 << self.rng.randrange(swarm.pieces)
                    host = self.hosts[member.host]
                    body = {"peer_id": host.peer_id, "pieces": mask_to_hex(member.pieces)}
                    path = routes.REPORT.url(digest=swarm.digest)
                    yield request(rec, "report", "POST", path, body, REPORTED, host.credential)

        await self._closed_loop(calls(), self.s.seconds)

    async def _views(self, rec: Recorder) -> None:
        children = [(swarm, m) for swarm in self.swarms for m in swarm.children()]

        def calls() -> Iterator[Callable[[Client], Awaitable[object]]]:
            while True:
                for swarm, member in children:
                    # `since` = -1: the version has passed it, so the view is answered at once.
                    path = self.view_path(swarm, member, -1, VIEW_WAIT)
                    yield request(rec, "view", "GET", path, headers=self.hosts[member.host].credential)

        await self._closed_loop(calls(), self.s.seconds)

    # --- long-polls ---------------------------------------------------------------------------------

    def _take_view(self, swarm: Swarm, member: Member, view: dict[str, Any]) -> list[int]:
        """Apply a view as a peer does: version, and the digests known from the start; returns the new ones."""
        member.version = int(view["version"])
        start = int(view.get("digests_from", 0))
        digests: list[str] = view["piece_digests"]
        learned = []
        while member.known < swarm.pieces and 0 <= member.known - start < len(digests):
            if not digests[member.known - start]:
                break
            learned.append(member.known)
            member.known += 1
        return learned

    async def _poll(self, rec: Recorder, swarm: Swarm, member: Member, wakes: list[float]) -> list[int]:
        """One long-poll of a child; digests it learned, their wake-up latencies appended to `wakes`."""
        path = self.view_path(swarm, member, member.version, VIEW_WAIT)
        credential = self.hosts[member.host].credential
        raw = await rec.call(self.clients[member.host], "long-poll", "GET", path, headers=credential)
        if raw is None:
            await asyncio.sleep(0.1)
            return []
        now = time.perf_counter()
        learned = self._take_view(swarm, member, json.loads(raw))
        for index in learned:
            reported = swarm.reported_at.get(index)
            if reported is not None:
                wakes.append(now - reported)
        return learned

    async def _wake(self, rec: Recorder) -> PhaseFigures:
        wakes: list[float] = []
        digests = min(self.s.wake_digests, self.s.pieces)
        deadline = time.perf_counter() + WAKE_TIMEOUT * (digests + 1)
        for swarm in self.swarms:
            swarm.everyone_knows = {index: asyncio.Event() for index in range(digests)}

        async def child(swarm: Swarm, member: Member, everyone: int) -> None:
            while member.known < digests and time.perf_counter() < deadline:
                for index in await self._poll(rec, swarm, member, wakes):
                    swarm.learned[index] = swarm.learned.get(index, 0) + 1
                    if swarm.learned[index] == everyone and index in swarm.everyone_knows:
                        swarm.everyone_knows[index].set()

        async def source(swarm: Swarm) -> None:
            member = next((m for m in swarm.members if m.source), None)
            if member is None:
                rec.fail("digests", f"swarm {swarm.digest} has no source")
                return
            path = routes.REPORT.url(digest=swarm.digest)
            host = self.hosts[member.host]
            for index in range(digests):
                member.pieces |= 1 << index
                body = {
                    "peer_id": host.peer_id,
                    "pieces": mask_to_hex(member.pieces),
                    "piece_digests": {str(index): swarm.piece_digest(index)},
                }
                swarm.reported_at[index] = time.perf_counter()
                await rec.call(self.clients[member.host], "digests", "POST", path, body, REPORTED, host.credential)
                try:
                    await asyncio.wait_for(swarm.everyone_knows[index].wait(), WAKE_TIMEOUT)
                except TimeoutError:
                    rec.fail("long-poll", f"digest {index} of {swarm.digest} not delivered in {WAKE_TIMEOUT:g} s")
                    return

        # Children are waiting before the first digest goes out: their first polls get time to arrive.
        polls = [
            asyncio.ensure_future(child(swarm, m, len(swarm.children()))) for swarm in self.swarms
            for m in swarm.children()
        ]
        await asyncio.sleep(0.5)
        await asyncio.gather(*(source(swarm) for swarm in self.swarms), *polls)
        expected = sum(len(s.children()) for s in self.swarms) * digests
        return self._outcome(wakes, expected)

    async def _play(self, rec: Recorder) -> PhaseFigures:
        s = self.s
        wakes: list[float] = []
        stop = asyncio.Event()
        learned = 0
        deadline = time.perf_counter() + s.play_window + s.play_pieces * s.piece_interval + WAKE_TIMEOUT

        async def heartbeat(host: int, start: float) -> None:
            # A host's beats are in phase with its start, as a real peer's timer is: a first beat when it starts, so a
            # play shorter than the interval (the quick settings) still carries heartbeats.
            await asyncio.sleep(start)
            while not stop.is_set():
                await self._heartbeat_call(rec, host)(self.clients[host])
                await asyncio.sleep(HEARTBEAT_INTERVAL)

        async def download(swarm: Swarm, member: Member, start: float) -> None:
            nonlocal learned
            await asyncio.sleep(start)
            view = await self._join_one(rec, self.clients[member.host], swarm, member)
            if view is None:
                return
            if view["role"] == ROLE_FEEDER:
                member.source = True
                await self._source(rec, swarm, member)
                return
            learned += member.known
            member.pieces = (1 << member.known) - 1
            reporter = Reporter(rec, self.clients[member.host], self.hosts[member.host], swarm, member)
            reporter.mark()
            while member.known < swarm.pieces and time.perf_counter() < deadline:
                new = await self._poll(rec, swarm, member, wakes)
                learned += len(new)
                # Pieces come from parents as soon as their digests are known: the supernode never sees that part.
                member.pieces = (1 << member.known) - 1
                if new:
                    reporter.mark()
            await reporter.finish()

        hosts = range(min(s.play_hosts, s.hosts))
        downloads = []
        starts: dict[int, float] = {}
        for host in hosts:
            start = starts[host] = self.rng.uniform(0, s.play_window)
            for layer in range(s.layers):
                swarm = self.play_swarms[(host + layer) % len(self.play_swarms)]
                member = Member(host, self.play_swarms.index(swarm))
                swarm.members.append(member)
                downloads.append(download(swarm, member, start))
        beats = [asyncio.ensure_future(heartbeat(h, starts[h])) for h in hosts]
        try:
            await asyncio.gather(*downloads)
        finally:
            stop.set()
            for beat in beats:
                beat.cancel()
            await asyncio.gather(*beats, return_exceptions=True)
        expected = sum(s.pieces * len(s.children()) for s in self.play_swarms)
        outcome = self._outcome(wakes, expected)
        outcome.delivered = learned
        return outcome

    async def _source(self, rec: Recorder, swarm: Swarm, member: Member) -> None:
        """Cut a piece every `piece_interval` and report its digest at once (the reporter's urgent path)."""
        path = routes.REPORT.url(digest=swarm.digest)
        interval = max(self.s.piece_interval, URGENT_INTERVAL)
        client, host = self.clients[member.host], self.hosts[member.host]
        for index in range(swarm.pieces):
            await asyncio.sleep(interval)
            member.pieces |= 1 << index
            done = index == swarm.pieces - 1
            body = {
                "peer_id": host.peer_id,
                "pieces": mask_to_hex(member.pieces),
                "piece_digests": {str(index): swarm.piece_digest(index)},
                "done": done,
            }
            swarm.reported_at[index] = time.perf_counter()
            await rec.call(client, "digests", "POST", path, body, REPORTED, host.credential)

    def _outcome(self, wakes: list[float], expected: int) -> PhaseFigures:
        figures = PhaseFigures("", 0.0, 0.0, 0.0, {}, {})
        figures.wake = Latency.of(wakes)
        figures.delivered = len(wakes)
        figures.expected = expected
        return figures


class Reporter:
    """A child's piece counts, batched as peer/reporter.py batches them: at most one report per BATCH_DELAY."""

    def __init__(self, rec: Recorder, client: Client, host: Host, swarm: Swarm, member: Member) -> None:
        self.rec, self.client, self.host, self.swarm, self.member = rec, client, host, swarm, member
        self._task: asyncio.Task[None] | None = None

    def mark(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._send_later())

    async def _send_later(self) -> None:
        await asyncio.sleep(BATCH_DELAY)
        await self._send(done=False)

    async def finish(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._send(done=True)

    async def _send(self, *, done: bool) -> None:
        body = {"peer_id": self.host.peer_id, "pieces": mask_to_hex(self.member.pieces), "done": done}
        path = routes.REPORT.url(digest=self.swarm.digest)
        await self.rec.call(self.client, "report", "POST", path, body, REPORTED, self.host.credential)


def main(argv: list[str]) -> int:
    settings = LoadSettings(**json.loads(argv[0]))
    try:
        import uvloop  # The generator's own loop only: the less CPU it spends, the less it disturbs the server.

        runner: Callable[[Any], Any] = uvloop.run
    except ImportError:
        runner = asyncio.run
    figures = runner(LoadGenerator(settings).run())
    json.dump([asdict(f) for f in figures], sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
