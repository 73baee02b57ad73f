"""What the benchmark measured, as plain dataclasses: rendered to Markdown and dumped as JSON."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field


@dataclass(slots=True)
class DisruptionEvent:
    """What was done to a storm, and when (seconds after the pulls started)."""

    kind: str
    planned_at: float
    # When the signal was sent; None: it never was (see error).
    fired_at: float | None = None
    # "supernode", or the role of the host whose peer was killed.
    target: str = ""
    # The supernode's peer id of the killed host, and the blob it was feeding (feeder-kill).
    target_peer: str = ""
    target_digest: str = ""
    # When the stopped supernode exited, and when the new one answered /healthz (the restart kinds).
    exited_at: float | None = None
    restarted_at: float | None = None
    # The killed host's own pull: not counted as a failure, reported for what it is.
    killed_pull: str = ""
    # The killed host's address, and the blob bytes the upstream sent to the other hosts: what the killed host had
    # fetched and not passed on died with it under any design; this share shows whether the others stormed.
    target_ip: str = ""
    survivors_upstream_bytes: int | None = None
    # Anything that went otherwise than planned without making the run void (a late exit).
    note: str = ""
    # The fault could not be injected as asked: the run says nothing about the fault.
    error: str = ""


@dataclass(slots=True)
class CpuPerByte:
    """CPU seconds one kind of daemon spent over a storm, against the bytes it moved.

    For the peers: received is what they fetched (from the upstream and from each other), served what they sent
    (to other peers and to their host's client). The supernode moves no blob bytes: its figures are per byte the
    peers received and served, what its scheduling cost per byte moved.
    """

    kind: str
    cpu_seconds: float
    bytes_received: int
    bytes_served: int

    @property
    def per_gb_received(self) -> float:
        return self.cpu_seconds / (self.bytes_received / 1e9) if self.bytes_received else 0.0

    @property
    def per_gb_served(self) -> float:
        return self.cpu_seconds / (self.bytes_served / 1e9) if self.bytes_served else 0.0


@dataclass(slots=True)
class ScenarioResult:
    key: str
    name: str
    hosts: int
    image_bytes: int
    # Blob body bytes the upstream registry logged (http.response.written of blob GETs).
    upstream_blob_bytes: int
    # Ethernet bytes the upstream sent on its link (its tbf qdisc): every request, headers and TCP included.
    upstream_wire_bytes: int
    link_seconds: float
    host_seconds: list[float]
    digests_ok: bool
    failures: list[str] = field(default_factory=list)
    # Pulls whose skopeo failed (or timed out), and pulls that ended with a wrong or missing blob.
    failed_pulls: int = 0
    digest_problems: int = 0
    # Share of the machine's CPU time that was busy during the pulls (other users of the machine included).
    cpu_busy: float = 0.0
    load_before: float = 0.0
    # Scenario-specific figures (peer counters, daemon CPU seconds).
    extra: dict[str, float] = field(default_factory=dict)
    # CPU per byte of the scenario's daemons (the peers and the supernode; the central cache), over the storm.
    cpu: list[CpuPerByte] = field(default_factory=list)
    # The client every host ran, and for scenario (c) how it reached Damselfly (bench/clients.py).
    client: str = "skopeo"
    mirror_mode: str = ""
    # Which of the run's rounds (1 for a single storm per scenario).
    round: int = 1
    # The fault injected into this storm (bench/disrupt.py); None: an undisturbed storm. The host it killed, if any,
    # is left out of host_seconds, digests_ok and failures: its own pull is in the event.
    event: DisruptionEvent | None = None

    @property
    def upstream_ratio(self) -> float:
        return self.upstream_blob_bytes / self.image_bytes

    @property
    def survivors_upstream_ratio(self) -> float:
        """Blob bytes the upstream sent to the hosts a fault left alone / image bytes; without a killed host, all."""
        survivors = self.event.survivors_upstream_bytes if self.event is not None else None
        return (self.upstream_blob_bytes if survivors is None else survivors) / self.image_bytes

    @property
    def wire_ratio(self) -> float:
        return self.upstream_wire_bytes / self.image_bytes

    @property
    def all_done(self) -> float:
        return max(self.host_seconds) if self.host_seconds else 0.0

    @property
    def time_ratio(self) -> float:
        return self.all_done / self.link_seconds

    @property
    def p50(self) -> float:
        return statistics.median(self.host_seconds) if self.host_seconds else 0.0


@dataclass(slots=True)
class ClusterReport:
    hosts: int
    upstream_mbit: int
    host_mbit: int
    image_bytes: int
    layer_bytes: list[int]
    scenarios: list[ScenarioResult]
    # The run's namespace prefix (all of them are gone when the benchmark returns).
    network: str = ""
    client: str = "skopeo"
    mirror_mode: str = "entry"
    # Storms of each scenario, run in turns (a, c, a, c, ...): the spread over them, not one storm, is the figure.
    rounds: int = 1


@dataclass(slots=True)
class Comparison:
    """One loopback figure for Damselfly against the same figure for the baseline, measured in the same run."""

    what: str
    unit: str
    damselfly: float
    baseline: float
    baseline_name: str
    # "higher" when a bigger figure is better (throughput), "lower" when smaller is (time, memory).
    better: str
    target: str = ""
    # Whether issue [3]'s target for this figure was reached (None: no target).
    target_met: bool | None = None
    samples_damselfly: list[float] = field(default_factory=list)
    samples_baseline: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.damselfly / self.baseline if self.baseline else float("nan")


@dataclass(slots=True)
class LoopbackReport:
    blob_bytes: int
    image_bytes: int
    clients: int
    comparisons: list[Comparison]
    extra: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class DisruptionPair:
    """One run of a disruption: an undisturbed storm and a disrupted one, in the same network, one after the other."""

    undisturbed: ScenarioResult
    disrupted: ScenarioResult

    @property
    def time_ratio(self) -> float:
        return self.disrupted.all_done / self.undisturbed.all_done if self.undisturbed.all_done else float("nan")


@dataclass(slots=True)
class DisruptionReport:
    kind: str
    description: str
    disrupt_at: float
    hosts: int
    upstream_mbit: int
    host_mbit: int
    image_bytes: int
    layer_bytes: list[int]
    runs: list[DisruptionPair]
    network: str = ""

    @property
    def time_ratios(self) -> list[float]:
        return [r.time_ratio for r in self.runs]

    @property
    def median_time_ratio(self) -> float:
        return statistics.median(self.time_ratios) if self.runs else float("nan")

    @property
    def problems(self) -> list[str]:
        """Why the runs do not count or a pull went wrong (nothing: the empty list); not whether they were fast."""
        found: list[str] = []
        for index, run in enumerate(self.runs, 1):
            for label, storm in (("undisturbed", run.undisturbed), ("disrupted", run.disrupted)):
                if not storm.digests_ok:
                    found += [f"run {index} {label}: {f}" for f in storm.failures] or [f"run {index} {label}: wrong"]
            event = run.disrupted.event
            if event is None or event.error:
                found.append(f"run {index}: fault not injected: {event.error if event else 'no event'}")
            elif event.fired_at is None or event.fired_at >= run.disrupted.all_done:
                found.append(f"run {index}: the storm was over before the fault (make --disrupt-at smaller)")
        return found
