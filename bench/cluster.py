"""The pull storm: N hosts in namespaces pull one image at once, three ways, in one run.

(a) direct from the upstream; (b) through one central `docker-registry` in proxy mode (the classic client/server
cache); (c) through Damselfly: a supernode in its own namespace and a peer on every host, each host's client
pulling through its local proxy, by default through a mirror entry for a made-up registry name
(bench/mirror_entry.py), else as a registry of its own. The client is skopeo, podman or containerd
(bench/clients.py). The upstream is the real registry behind a `tc tbf`-limited link, serving a cached read-only
storage; the other scenarios start cold.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import damselfly

from .clients import PullClient, Route, make_client
from .cpu import StormCpu
from .image import CachedImage, ImageInfo, cached_image, layer_sizes
from .machine import CpuMeter, load_average
from .mirror_entry import mirror_entry, peer_config, registry_name
from .netns import Host, Topology
from .procs import Proc, ProcessSet, run
from .pull import PullOutcome, pull_everywhere
from .registry import (
    READY_LINE,
    blob_bytes_served,
    busy_seconds,
    client_requests,
    log_offset,
    registry_config,
    registry_proc,
    settle,
)
from .results import ClusterReport, CpuPerByte, DisruptionEvent, ScenarioResult

REGISTRY_PORT = 5000
SUPERNODE_PORT = 8002
MIRROR = "127.0.0.1:65001"
UPLOAD_PORT = 65002
SCENARIOS = {"a": "direct from the upstream", "b": "one central pull-through cache", "c": "Damselfly"}
Log = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    hosts: int = 8
    upstream_mbit: int = 100
    host_mbit: int = 1000
    image_bytes: int = 100_000_000
    scenarios: tuple[str, ...] = ("a", "b", "c")
    pull_timeout: float = 600.0
    start_timeout: float = 60.0
    # The daemons' log level: "debug" logs every request with a timestamp, to find where time goes.
    log_level: str = "info"
    # What every host pulls with (bench/clients.py), and how it reaches Damselfly in scenario (c).
    client: str = "skopeo"
    mirror_mode: str = "entry"
    # Storms of each scenario, in turns.
    rounds: int = 1


def python_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "damselfly", *args]


def python_env() -> dict[str, str]:
    # The daemons import the same code as this command, whether installed or run from a checkout.
    return {"PYTHONPATH": str(Path(damselfly.__file__).resolve().parents[1])}


@dataclass(frozen=True, slots=True)
class Network:
    """The hosts and the upstream of one benchmark run; storms run in it one after the other."""

    topo: Topology
    upstream: Host
    hosts: list[Host]
    image: CachedImage
    sizes: list[int]
    rundir: Path
    # The made-up registry name the hosts pull in mirror-entry mode, and the containerd hosts directory routing it.
    registry_name: str = ""
    hosts_dir: Path | None = None

    @property
    def upstream_log(self) -> Path:
        return self.rundir / "upstream.log"


@dataclass(slots=True)
class DamselflyDaemons:
    """Scenario (c)'s running daemons, as a fault injected into its storm sees them (bench/disrupt.py)."""

    sn: Host
    supernode_url: str
    supernode: Proc
    peers: list[tuple[Host, Proc]]
    image: ImageInfo
    # A file (mode 0600) holding the operators' `Authorization` header, for `curl -H @FILE`: the token is never on a
    # command line.
    operator_header: Path
    # Starts the supernode again on the same address, with the same flags and secrets; returns once it answers.
    restart_supernode: Callable[[], Proc]


class Fault(Protocol):
    """Something done to a running storm of scenario (c)."""

    def start(self, daemons: DamselflyDaemons, pulls_started: float) -> None:
        """Called as the pulls start (`time.monotonic()` of that moment); must return at once."""

    def finish(self) -> DisruptionEvent:
        """Called once the pulls ended: waits for the fault's own work, says what was done."""


class ClusterBench:
    def __init__(self, settings: ClusterSettings, workdir: Path, log: Log) -> None:
        self.settings = settings
        self.workdir = workdir
        self.log = log

    @contextmanager
    def network(self) -> Iterator[Network]:
        """The namespaces, links and the upstream registry serving the cached image; all removed on leaving."""
        s = self.settings
        sizes = layer_sizes(s.image_bytes)
        self.log(f"image of {len(sizes)} random layers ({', '.join(f'{b / 1e6:.1f}' for b in sizes)} MB)")
        image = cached_image(self.workdir / "cache", sizes)
        with Topology() as topo, ProcessSet() as procs, ExitStack() as entries:
            rundir = self.workdir / "runs" / topo.name
            self.log(f"network {topo.name}: {s.hosts} hosts in namespaces on {topo.subnet}.0/24, logs in {rundir}")
            upstream = topo.add_host("up", 1, s.upstream_mbit)
            hosts = [topo.add_host(f"h{i}", 11 + i, s.host_mbit) for i in range(s.hosts)]
            config = registry_config(image.storage, f"0.0.0.0:{REGISTRY_PORT}", readonly=True)
            registry = procs.start(registry_proc(rundir, "upstream", config, prefix=upstream.cmd()))
            registry.wait_for_log(READY_LINE, s.start_timeout)
            name, hosts_dir = "", None
            if s.mirror_mode == "entry" and "c" in s.scenarios:
                name = registry_name(topo.run_id)
                hosts_dir = entries.enter_context(mirror_entry(name, MIRROR, rundir))
                self.log(f"mirror entry: hosts pull {name}, which only their Damselfly knows")
            yield Network(topo, upstream, hosts, image, sizes, rundir, name, hosts_dir)

    def scenario(self, net: Network, key: str, rundir: Path) -> Scenario:
        return Scenario(self, net, rundir)

    def run(self) -> ClusterReport:
        s = self.settings
        results = []
        with self.network() as net:
            for round_no in range(1, s.rounds + 1):
                for key in s.scenarios:
                    of = f" (round {round_no} of {s.rounds})" if s.rounds > 1 else ""
                    self.log(f"scenario ({key}) {SCENARIOS[key]}: {s.hosts} hosts pull at once with {s.client}{of}")
                    rundir = net.rundir / (f"{key}-{round_no}" if s.rounds > 1 else key)
                    result = self.scenario(net, key, rundir).run(key)
                    result.round = round_no
                    self.log(
                        f"  upstream {result.upstream_ratio:.2f}x image, all done {result.all_done:.1f}s "
                        f"({result.time_ratio:.2f}x link time), p50 {result.p50:.1f}s, digests ok: "
                        f"{result.digests_ok}"
                    )
                    results.append(result)
        return ClusterReport(
            s.hosts, s.upstream_mbit, s.host_mbit, net.image.info.blob_bytes, net.sizes, results, net.topo.name,
            s.client, s.mirror_mode, s.rounds,
        )


class Scenario:
    def __init__(self, bench: ClusterBench, net: Network, rundir: Path) -> None:
        self.settings = bench.settings
        self.net = net
        self.topo = net.topo
        self.upstream = net.upstream
        self.hosts = net.hosts
        self.image: CachedImage = net.image
        self.rundir = rundir
        self.upstream_log = net.upstream_log
        # Fresh for every storm: a client's per-host state (storage, daemons) never carries over.
        self.client: PullClient = make_client(self.settings.client)
        self.cpu: list[CpuPerByte] = []
        self.extra: dict[str, float] = {}
        # The scenario's daemons by kind, whose CPU time is reported: where a 2-core machine's time goes.
        self.daemons: dict[str, list[Proc]] = {}
        self.peers: list[tuple[Host, Proc]] = []
        self.damselfly: DamselflyDaemons | None = None

    @property
    def upstream_url(self) -> str:
        return f"http://{self.upstream.ip}:{REGISTRY_PORT}"

    def run(self, key: str, fault: Fault | None = None) -> ScenarioResult:
        """One storm; with `fault` (scenario c only), that fault is injected into it."""
        if fault is not None and key != "c":
            raise ValueError("faults are injected into scenario (c) only")
        try:
            return self._measure(key, fault)
        finally:
            self.client.cleanup()
            # Pulled images, peers' stores and the cache's storage are big and of no use after the run (also
            # after a failure or Ctrl-C); the logs stay.
            for bulky in ("out", "data", "cache-storage"):
                shutil.rmtree(self.rundir / bulky, ignore_errors=True)
            # The operators' token is of no use after the run either, and is a secret.
            (self.rundir / "operator-header").unlink(missing_ok=True)

    def _measure(self, key: str, fault: Fault | None) -> ScenarioResult:
        s = self.settings
        event: DisruptionEvent | None = None
        with ProcessSet() as procs:
            route = self._prepare(key, procs)
            pulls = [(h, route, self.rundir / "out" / h.role) for h in self.hosts]
            for host, _, out in pulls:
                shutil.rmtree(out, ignore_errors=True)
                self.client.prepare(host, out, self.rundir, procs)
            self.client.ready()
            settle(self.upstream_log)
            offset = log_offset(self.upstream_log)
            sent_before = self.topo.sent_bytes(self.upstream)
            load = load_average()
            meter = CpuMeter()
            storm_cpu = StormCpu(self.daemons)
            client_cpu = self.client.cpu_seconds()
            running = self.damselfly
            at_start = None if fault is None or running is None else lambda t: fault.start(running, t)
            outcomes = pull_everywhere(pulls, self.client, self.rundir, self.image.info, s.pull_timeout, at_start)
            if fault is not None:
                event = fault.finish()
                outcomes = _excuse(outcomes, event)
            busy = meter.busy()
            for kind, daemons in self.daemons.items():
                self.extra[f"{kind}_cpu_seconds"] = storm_cpu.used(daemons)
            if self.client.cpu_seconds():
                self.extra[f"{self.client.name}_daemons_cpu_seconds"] = self.client.cpu_seconds() - client_cpu
            self._collect_peer_stats()
            # A cache may still be fetching for its own storage after the clients finished: count that too.
            settle(self.upstream_log, quiet=1.0)
            upstream_bytes = blob_bytes_served(self.upstream_log, offset)
            if event is not None and event.target_ip:
                event.survivors_upstream_bytes = blob_bytes_served(self.upstream_log, offset, excluding=event.target_ip)
            self.extra["upstream_busy_seconds"] = busy_seconds(self.upstream_log, offset)
            wire = self.topo.sent_bytes(self.upstream) - sent_before
            self.cpu = self._cpu_per_byte(storm_cpu, upstream_bytes)
            # Through Damselfly, only the peers may ask the upstream: a client's own request there is a fallback
            # around the mirror, and the storm would not have measured Damselfly.
            bypassed = client_requests(self.upstream_log, offset) if key == "c" else 0
        failures = [f"{o.host}: {p}" for o in outcomes for p in o.problems]
        if bypassed:
            self.extra["client_requests_at_upstream"] = float(bypassed)
            failures.insert(0, f"{bypassed} requests of the {self.client.name} clients reached the upstream "
                               "directly: they went around the mirror")
        return ScenarioResult(
            key=key,
            name=SCENARIOS[key],
            hosts=s.hosts,
            image_bytes=self.image.info.blob_bytes,
            upstream_blob_bytes=upstream_bytes,
            upstream_wire_bytes=wire,
            link_seconds=self.image.info.blob_bytes * 8 / (s.upstream_mbit * 1e6),
            host_seconds=[o.seconds for o in outcomes],
            digests_ok=all(o.digests_ok for o in outcomes) and not bypassed,
            failures=failures[:20],
            failed_pulls=sum(o.exit_code != 0 for o in outcomes),
            digest_problems=sum(o.exit_code == 0 and not o.digests_ok for o in outcomes),
            cpu_busy=busy,
            load_before=load,
            extra=self.extra,
            cpu=self.cpu,
            client=self.client.name,
            mirror_mode=s.mirror_mode if key == "c" else "",
            event=event,
        )

    def _cpu_per_byte(self, storm_cpu: StormCpu, upstream_bytes: int) -> list[CpuPerByte]:
        """The daemons' CPU over the storm against the bytes moved (CpuPerByte says which bytes)."""
        if self.peers:
            received = self.extra.get("bytes_from_upstream", 0.0) + self.extra.get("bytes_from_peers", 0.0)
            served = self.extra.get("upload_bytes", 0.0) + self.extra.get("bytes_served_local", 0.0)
            return [storm_cpu.per_byte(kind, self.daemons[kind], received, served) for kind in ("peer", "supernode")]
        if "cache" in self.daemons:
            served = float(self.image.info.blob_bytes * len(self.hosts))
            return [storm_cpu.per_byte("cache", self.daemons["cache"], upstream_bytes, served)]
        return []

    def _prepare(self, key: str, procs: ProcessSet) -> Route:
        """Start what the scenario needs; how every host's client reaches the image."""
        repo = f"{self.image.info.repo}:{self.image.info.tag}"
        if key == "a":
            return Route(f"{self.upstream.ip}:{REGISTRY_PORT}/{repo}")
        if key == "b":
            cache = self.topo.hosts.get("cache") or self.topo.add_host("cache", 2, self.settings.host_mbit)
            config = registry_config(self.rundir / "cache-storage", f"0.0.0.0:{REGISTRY_PORT}",
                                     proxy_remote=self.upstream_url)
            proc = procs.start(registry_proc(self.rundir, "cache", config, prefix=cache.cmd()))
            proc.wait_for_log(READY_LINE, self.settings.start_timeout)
            self.daemons["cache"] = [proc]
            return Route(f"{cache.ip}:{REGISTRY_PORT}/{repo}")
        self._start_damselfly(procs)
        if self.net.registry_name:
            return Route(f"{self.net.registry_name}/{repo}", self.net.hosts_dir)
        return Route(f"{MIRROR}/{repo}")

    def _start_damselfly(self, procs: ProcessSet) -> None:
        sn = self.topo.hosts.get("sn") or self.topo.add_host("sn", 3, self.settings.host_mbit)
        # The daemons listen beyond loopback (on the bridge): they need the cluster's secret, from the environment.
        env = {**python_env(), "DAMSELFLY_JOIN_TOKEN": secrets.token_urlsafe(32)}
        # The operators' token opens the supernode's listings, which a fault reads to find its target.
        operator_token = secrets.token_urlsafe(32)
        supernode_env = {**env, "DAMSELFLY_OPERATOR_TOKEN": operator_token}
        # --no-manager: the storm measures the data plane, and as root the platform's database would otherwise be
        # the machine's own (/var/lib/damselfly/supernode).
        supernode_args = sn.cmd(*python_cmd("supernode", "--listen", f"0.0.0.0:{SUPERNODE_PORT}", "--no-manager",
                                            "--log-level", self.settings.log_level))
        supernode_url = f"http://{sn.ip}:{SUPERNODE_PORT}"

        def start_supernode() -> Proc:
            # Appends to the same log, so a restarted supernode's lines follow the killed one's.
            proc = procs.start(Proc(supernode_args, log_path=self.rundir / "supernode.log", name="supernode",
                                    env=supernode_env))
            proc.wait_for_http(f"{supernode_url}/healthz", self.settings.start_timeout, sn.cmd())
            return proc

        supernode = start_supernode()
        if self.net.registry_name:
            # The made-up name is the peers' only upstream: routed there by their config alone.
            config = self.rundir / "peer.toml"
            config.parent.mkdir(parents=True, exist_ok=True)
            config.write_text(peer_config(self.net.registry_name, self.upstream_url))
            upstream = ["--config", str(config)]
        else:
            upstream = ["--upstream", self.upstream_url]
        for host in self.hosts:
            args = python_cmd(
                "peer",
                "--supernode", f"http://{sn.ip}:{SUPERNODE_PORT}",
                "--listen", MIRROR,
                "--upload-listen", f"0.0.0.0:{UPLOAD_PORT}",
                "--data-dir", str(self.rundir / "data" / host.role),
                *upstream,
                "--advertise", host.ip,
                "--log-level", self.settings.log_level,
            )
            log_path = self.rundir / f"peer-{host.role}.log"
            peer = procs.start(Proc(host.cmd(*args), log_path=log_path, name=f"peer-{host.role}", env=env))
            self.peers.append((host, peer))
        # Started all at once and awaited together: their start-up overlaps.
        for host, peer in self.peers:
            peer.wait_for_http(f"http://{MIRROR}/healthz", self.settings.start_timeout, host.cmd())
        self.daemons = {"supernode": [supernode], "peer": [p for _, p in self.peers]}

        def restart_supernode() -> Proc:
            proc = start_supernode()
            self.daemons["supernode"].append(proc)
            return proc

        header = self.rundir / "operator-header"
        header.write_text("")
        header.chmod(0o600)
        header.write_text(f"Authorization: Bearer {operator_token}\n")
        self.damselfly = DamselflyDaemons(sn, supernode_url, supernode, self.peers, self.image.info, header,
                                          restart_supernode)

    def _collect_peer_stats(self) -> None:
        """Sum the peers' own counters (GET /stats on each host's proxy)."""
        for host, _ in self.peers:
            out = run(host.cmd("curl", "-s", "--max-time", "5", f"http://{MIRROR}/stats"), timeout=15.0, check=False)
            try:
                stats = json.loads(out.stdout)
            except ValueError:
                stats = {}
            for name in ("bytes_from_upstream", "bytes_from_peers", "upload_bytes", "bytes_served_local", "fallbacks",
                         "corrupt_pieces"):
                self.extra[name] = self.extra.get(name, 0.0) + float(stats.get(name, 0))


def _excuse(outcomes: list[PullOutcome], event: DisruptionEvent) -> list[PullOutcome]:
    """The outcomes of the hosts the fault left alone; the killed host's own pull goes into the event."""
    kept = []
    for outcome in outcomes:
        if outcome.host != event.target:
            kept.append(outcome)
        elif outcome.digests_ok:
            event.killed_pull = f"done right in {outcome.seconds:.1f} s"
        else:
            problems = " ".join("; ".join(outcome.problems).split())
            event.killed_pull = f"failed after {outcome.seconds:.1f} s: {problems[:300]}"
    return kept
