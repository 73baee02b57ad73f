"""Issue [8]: what a dead supernode or a dead feeder costs a pull storm of scenario (c).

Each run measures, in the same network, an undisturbed storm and a storm into which one fault is injected a few
seconds after the pulls started (their order alternates from run to run, so neither always goes first):

    supernode-kill     SIGKILL the supernode; it stays down
    supernode-restart  SIGKILL the supernode, start it again on the same address 2 s later (same flags, secrets)
    supernode-stop     SIGTERM the supernode (an orderly stop), start it again 2 s after the signal
    feeder-kill        SIGKILL the peer of the host fetching the largest layer from the upstream (its feeder, as
                       the supernode's operators' listing names it)

A killed host's own pull is not a failure: it is reported apart; every other host's pull must be right.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from supernode.api import PeerList, SwarmList

from .cluster import ClusterBench, ClusterSettings, DamselflyDaemons, Log, Network
from .netns import Host
from .procs import Proc, run
from .results import DisruptionEvent, DisruptionPair, DisruptionReport, ScenarioResult

KINDS: dict[str, str] = {
    "supernode-kill": "supernode killed (SIGKILL), not started again",
    "supernode-restart": "supernode killed (SIGKILL), started again on the same address 2 s later",
    "supernode-stop": "supernode stopped (SIGTERM), started again on the same address 2 s after the signal",
    "feeder-kill": "peer of the largest layer's feeder host killed (SIGKILL)",
}
DEFAULT_AT = 3.0
RESTART_AFTER = 2.0
# Longest a supernode given SIGTERM may take to exit before it is killed: the new one needs its port.
STOP_GRACE = 10.0
# Longest to wait at the fault's moment for the listing to name the largest layer's feeder.
TARGET_WAIT = 5.0
# How long `finish` waits for a fault still at work after the pulls ended (a restart waits for its start-up).
FINISH_WAIT = 90.0


class Disruption:
    """One fault of one kind, injected `at` seconds after the pulls started, from a thread of its own."""

    def __init__(self, kind: str, at: float) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown disruption {kind!r} (one of {', '.join(KINDS)})")
        self.event = DisruptionEvent(kind=kind, planned_at=at)
        self._started = 0.0
        self._thread: threading.Thread | None = None

    def start(self, daemons: DamselflyDaemons, pulls_started: float) -> None:
        self._started = pulls_started
        self._thread = threading.Thread(target=self._inject, args=(daemons,), name=self.event.kind, daemon=True)
        self._thread.start()

    def finish(self) -> DisruptionEvent:
        if self._thread is None:
            self.event.error = "the storm never started"
        else:
            self._thread.join(FINISH_WAIT)
            if self._thread.is_alive():
                self.event.error = f"the fault was still at work {FINISH_WAIT:.0f} s after the pulls ended"
        return self.event

    def _now(self) -> float:
        return time.monotonic() - self._started

    def _sleep_until(self, moment: float) -> None:
        time.sleep(max(0.0, moment - self._now()))

    def _inject(self, daemons: DamselflyDaemons) -> None:
        try:
            self._sleep_until(self.event.planned_at)
            if self.event.kind == "feeder-kill":
                self._kill_feeder(daemons)
            else:
                self._disrupt_supernode(daemons)
        except Exception as exc:  # a fault that could not be injected voids the run; the storm goes on
            self.event.error = f"{type(exc).__name__}: {exc}"

    def _disrupt_supernode(self, daemons: DamselflyDaemons) -> None:
        event, supernode = self.event, daemons.supernode
        event.target = "supernode"
        event.fired_at = self._now()
        supernode.kill(signal.SIGTERM if event.kind == "supernode-stop" else signal.SIGKILL)
        try:
            supernode.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            event.note = f"the supernode was still running {STOP_GRACE:.0f} s after SIGTERM: killed"
            supernode.kill(signal.SIGKILL)
            supernode.wait(STOP_GRACE)
        event.exited_at = self._now()
        if event.kind == "supernode-kill":
            return
        self._sleep_until(event.fired_at + RESTART_AFTER)
        daemons.restart_supernode()
        event.restarted_at = self._now()

    def _kill_feeder(self, daemons: DamselflyDaemons) -> None:
        event = self.event
        digest = max(daemons.image.layers, key=lambda blob: blob[1])[0]
        event.target_digest = digest
        deadline = self._now() + TARGET_WAIT
        feeder = feeder_of(daemons, digest)
        while feeder is None and self._now() < deadline:
            time.sleep(0.1)
            feeder = feeder_of(daemons, digest)
        if feeder is None:
            raise LookupError(f"the supernode named no feeder of {digest} within {TARGET_WAIT:.0f} s")
        host, peer = host_of(daemons, feeder)
        event.target, event.target_peer, event.target_ip = host.role, feeder, host.ip
        event.fired_at = self._now()
        peer.kill(signal.SIGKILL)
        peer.wait(STOP_GRACE)


def operators_get(daemons: DamselflyDaemons, path: str) -> dict[str, Any]:
    """One operators' listing of the supernode, asked from inside its namespace (the bench's own has no route)."""
    out = run(
        daemons.sn.cmd("curl", "-sf", "--max-time", "3", "-H", f"@{daemons.operator_header}",
                       f"{daemons.supernode_url}{path}"),
        timeout=10.0,
    )
    body: dict[str, Any] = json.loads(out.stdout)
    return body


def feeder_of(daemons: DamselflyDaemons, digest: str) -> str | None:
    """The peer id of the swarm's feeder, as the supernode lists it now; None while it has none."""
    swarms = SwarmList.from_json(operators_get(daemons, "/api/v1/swarms")).swarms
    return next((s.feeder for s in swarms if s.digest == digest), None)


def host_of(daemons: DamselflyDaemons, peer_id: str) -> tuple[Host, Proc]:
    """The host, and its peer process, that the supernode knows as `peer_id` (by the address in its URL)."""
    peers = PeerList.from_json(operators_get(daemons, "/api/v1/peers")).peers
    url = next((p.url for p in peers if p.peer_id == peer_id), None)
    if url is None:
        raise LookupError(f"peer {peer_id} is not in the supernode's listing")
    address = urlsplit(url).hostname
    for host, proc in daemons.peers:
        if host.ip == address:
            return host, proc
    raise LookupError(f"peer {peer_id} has the address {address}, which is no host of this run")


@dataclass(frozen=True, slots=True)
class DisruptionSettings:
    kinds: tuple[str, ...]
    at: float = DEFAULT_AT
    runs: int = 3


class DisruptionBench:
    """For each kind, `runs` pairs of storms (undisturbed, disrupted) in one network."""

    def __init__(self, cluster: ClusterSettings, settings: DisruptionSettings, workdir: Path, log: Log) -> None:
        unknown = set(settings.kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown disruptions {sorted(unknown)} (known: {', '.join(KINDS)})")
        self.bench = ClusterBench(cluster, workdir, log)
        self.settings = settings
        self.log = log

    def run(self) -> list[DisruptionReport]:
        s, c = self.settings, self.bench.settings
        reports = []
        with self.bench.network() as net:
            for kind in s.kinds:
                self.log(f"disruption {kind}: {KINDS[kind]}, {s.at:g} s into a {c.hosts}-host storm, {s.runs} runs")
                pairs = [self._pair(net, kind, index) for index in range(1, s.runs + 1)]
                reports.append(DisruptionReport(
                    kind=kind, description=KINDS[kind], disrupt_at=s.at, hosts=c.hosts, upstream_mbit=c.upstream_mbit,
                    host_mbit=c.host_mbit, image_bytes=net.image.info.blob_bytes, layer_bytes=net.sizes, runs=pairs,
                    network=net.topo.name,
                ))
        return reports

    def _pair(self, net: Network, kind: str, index: int) -> DisruptionPair:
        # Odd runs start undisturbed, even runs disrupted: a slow first storm (cold page cache) biases neither.
        order = ("undisturbed", "disrupted") if index % 2 else ("disrupted", "undisturbed")
        storms: dict[str, ScenarioResult] = {}
        for label in order:
            fault = Disruption(kind, self.settings.at) if label == "disrupted" else None
            scenario = self.bench.scenario(net, "c", net.rundir / f"{kind}-{index}-{label}")
            result = scenario.run("c", fault)
            storms[label] = result
            self.log(f"  run {index} {label}: {describe(result)}")
        pair = DisruptionPair(storms["undisturbed"], storms["disrupted"])
        self.log(f"  run {index}: disrupted / undisturbed {pair.time_ratio:.2f}")
        return pair


def describe(result: ScenarioResult) -> str:
    event = result.event
    others = f" ({result.survivors_upstream_ratio:.2f}x to the others)" if event and event.target_ip else ""
    text = (
        f"all done {result.all_done:.1f} s, upstream {result.upstream_ratio:.2f}x image{others}, "
        f"failed pulls {result.failed_pulls}, digest problems {result.digest_problems}"
    )
    if event is not None:
        text += f"; {what_was_done(event)}"
    return text


def what_was_done(event: DisruptionEvent) -> str:
    """The event in a few words, for the log and the report's table."""
    if event.error:
        return f"NOT injected: {event.error}"
    parts = [f"{event.target} {'SIGTERM' if event.kind == 'supernode-stop' else 'SIGKILL'} at {event.fired_at:.1f} s"]
    if event.exited_at is not None and event.kind == "supernode-stop":
        parts.append(f"exited at {event.exited_at:.1f} s")
    if event.restarted_at is not None:
        parts.append(f"up again at {event.restarted_at:.1f} s")
    if event.killed_pull:
        parts.append(f"its own pull: {event.killed_pull}")
    if event.note:
        parts.append(event.note)
    return ", ".join(parts)
