"""`damselfly bench --scenarios supernode`: one real `damselfly supernode` on loopback under HTTP load.

Each sample starts a fresh supernode process and one load generator process (`sn_load`), which plays the peers'
protocol against it and measures, phase by phase, the requests answered, their round trips, the supernode's CPU
time and its own. What a 10,000-host cluster asks of the supernode comes from the scheduler simulation
(`simulate`), run in the same command: its calls per simulated second by kind, priced at the CPU each kind of
request cost here, say whether one supernode process keeps up.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .cluster import python_cmd, python_env
from .image import free_loopback_port
from .machine import CpuMeter, load_average
from .procs import CommandFailed, Proc, ProcessSet, clean_env
from .sim_model import SimSettings
from .simulate import Simulation
from .sn_load import LoadSettings, PhaseFigures

Log = Callable[[str], None]
# HTTP requests a peer sends, by the simulation's name for the scheduler call each one makes.
SIM_KINDS = {"register": "register", "join": "join", "heartbeat": "heartbeat", "report": "report", "view": "long-poll"}


@dataclass(frozen=True, slots=True)
class SupernodeBenchSettings:
    load: LoadSettings = field(default_factory=LoadSettings)
    repeat: int = 3
    # The cluster whose call rates the supernode must answer (the scheduler simulation's defaults).
    cluster: SimSettings = field(default_factory=SimSettings)
    timeout: float = 300.0


@dataclass(slots=True)
class SupernodeSample:
    phases: list[PhaseFigures]
    # The machine, for judging the sample: load average before it, and the share of all CPUs busy during it.
    load_before: float
    cpu_busy: float

    def phase(self, name: str) -> PhaseFigures:
        return next(p for p in self.phases if p.name == name)


@dataclass(slots=True)
class SupernodeReport:
    settings: SupernodeBenchSettings
    samples: list[SupernodeSample]
    # The simulated cluster's calls per simulated second, by kind of HTTP request.
    cluster_rates: dict[str, float] = field(default_factory=dict)

    def median(self, name: str, figure: Callable[[PhaseFigures], float]) -> float:
        return statistics.median(figure(s.phase(name)) for s in self.samples)

    def spread(self, name: str, figure: Callable[[PhaseFigures], float]) -> tuple[float, float]:
        values = [figure(s.phase(name)) for s in self.samples]
        return min(values), max(values)

    def cpu_ms_per_request(self, kind: str) -> float:
        """The supernode's CPU per request of one kind, in ms: that of the phase that sends (almost) only it."""
        return self.median(PHASE_OF[kind], cpu_ms)

    @property
    def cluster_cpu(self) -> float:
        """CPU-seconds per second one supernode process would need to answer the simulated cluster."""
        return sum(needed * self.cpu_ms_per_request(kind) / 1e3 for kind, needed in self.cluster_rates.items())

    @property
    def cluster_calls(self) -> float:
        return sum(self.cluster_rates.values())

    @property
    def errors(self) -> int:
        return sum(sum(p.errors.values()) for s in self.samples for p in s.phases)

    @property
    def undelivered(self) -> int:
        return sum(p.expected - p.delivered for s in self.samples for p in s.phases)


# The phase that measures each kind of request; the wake phase's few digest reports (one per swarm and digest,
# against hundreds of long-polls each) are counted with its long-polls.
PHASE_OF = {"register": "register", "join": "join", "heartbeat": "heartbeat", "report": "report",
            "view": "view", "long-poll": "wake"}


def cpu_ms(phase: PhaseFigures) -> float:
    """The supernode's CPU per request answered in a phase, in ms."""
    return phase.supernode_cpu * 1e3 / phase.answered if phase.answered else 0.0


def rate(phase: PhaseFigures) -> float:
    return phase.answered / phase.wall_seconds if phase.wall_seconds else 0.0


# `--quick`: seconds, for the smoke test; the figures mean little.
QUICK = SupernodeBenchSettings(
    load=LoadSettings(
        hosts=60, swarms=3, layers=2, pieces=4, concurrency=8, seconds=0.5, wake_digests=2, play_hosts=20,
        play_swarms=2, play_pieces=3, piece_interval=0.1, play_window=0.3,
    ),
    repeat=1,
    cluster=SimSettings(hosts=300, swarms=6, layers=3, window=5.0),
)


class SupernodeBench:
    def __init__(self, settings: SupernodeBenchSettings, workdir: Path, log: Log) -> None:
        self.settings = settings
        self.rundir = workdir / "runs" / f"supernode-{time.strftime('%Y%m%d-%H%M%S')}"
        self.log = log

    def run(self) -> SupernodeReport:
        s = self.settings
        load = s.load
        self.log(
            f"supernode: {load.hosts} hosts in {load.swarms} swarms ({load.layers} each), {load.concurrency} "
            f"connections per closed loop, play with {load.play_hosts} hosts; {s.repeat} samples"
        )
        samples = []
        for trial in range(s.repeat):
            sample = self._sample(trial)
            samples.append(sample)
            self.log("  " + ", ".join(f"{p.name} {p.answered / p.wall_seconds:,.0f}/s" for p in sample.phases))
        report = SupernodeReport(s, samples)
        report.cluster_rates = self._cluster_rates()
        return report

    def _sample(self, trial: int) -> SupernodeSample:
        port = free_loopback_port()
        with ProcessSet() as procs:
            supernode = procs.start(
                Proc(
                    # The load's simulated hosts advertise addresses in 10/8 from loopback: admit that network.
                    python_cmd("supernode", "--listen", f"127.0.0.1:{port}", "--no-manager",
                               "--peer-networks", "10.0.0.0/8", "--log-level", "warning"),
                    log_path=self.rundir / f"supernode-{trial}.log",
                    name="supernode",
                    env=python_env(),
                )
            )
            supernode.wait_for_log(f"listening on http://127.0.0.1:{port}", 30.0)
            settings = replace(self.settings.load, url=f"http://127.0.0.1:{port}", supernode_pid=supernode.pid)
            load_before, meter = load_average(), CpuMeter()
            result = subprocess.run(
                [sys.executable, "-m", "bench.sn_load", json.dumps(asdict(settings))],
                capture_output=True, text=True, timeout=self.settings.timeout, env=clean_env(python_env()),
            )
            busy = meter.busy()
            (self.rundir / f"load-{trial}.log").write_text(result.stderr)
            if result.returncode != 0:
                raise CommandFailed(f"load generator exited {result.returncode}: {result.stderr[-2000:]}")
            if not supernode.running():
                raise CommandFailed(f"the supernode died under load:\n{supernode.log_text()}")
        phases = [PhaseFigures.from_json(body) for body in json.loads(result.stdout)]
        return SupernodeSample(phases, load_before, busy)

    def _cluster_rates(self) -> dict[str, float]:
        """The simulated cluster's calls per simulated second, by HTTP request kind (deterministic: seeded)."""
        cluster = self.settings.cluster
        self.log(f"supernode: the call rates of {cluster.hosts:,} simulated hosts (damselfly simulate's model)")
        sim = Simulation(cluster)
        seconds = sim.run()
        calls = sim.timer.stats()
        return {kind: calls[name].count / seconds for name, kind in SIM_KINDS.items() if name in calls}
