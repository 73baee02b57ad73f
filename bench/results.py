"""What the benchmark measured, as plain dataclasses: rendered to Markdown and dumped as JSON."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field


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
    # Share of the machine's CPU time that was busy during the pulls (other users of the machine included).
    cpu_busy: float = 0.0
    load_before: float = 0.0
    # Scenario-specific figures (peer counters, daemon CPU seconds).
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def upstream_ratio(self) -> float:
        return self.upstream_blob_bytes / self.image_bytes

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
