"""One host on loopback: Damselfly's proxy against `docker-registry` serving the same bytes, in one run.

- warm throughput: a blob already in the peer's store, through the proxy, against the registry serving it;
- a cold single pull: skopeo through a peer with an empty store, against skopeo straight from the registry;
- time to first byte of a cold blob through the proxy, against the registry's;
- the peer daemon's peak RSS (VmHWM) while several clients read a large blob at once, cold and then warm.
Cold samples each get a fresh supernode and a peer with an empty store.
"""

from __future__ import annotations

import hashlib
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from .blob import CachedBlob, cached_blob
from .cluster import python_cmd, python_env
from .image import CachedImage, cached_image, free_loopback_port, layer_sizes
from .procs import CommandFailed, Proc, ProcessSet, clean_env, cpu_seconds, peak_rss_bytes, run
from .pull import skopeo_args, verify_pull
from .registry import READY_LINE, registry_config, registry_proc
from .results import Comparison, LoopbackReport

Log = Callable[[str], None]
MB = 1e6


@dataclass(frozen=True, slots=True)
class LoopbackSettings:
    blob_bytes: int = 1 << 30
    image_bytes: int = 100_000_000
    clients: int = 4
    repeat: int = 5
    timeout: float = 600.0


@dataclass(slots=True)
class Fetch:
    """One curl download: time to first byte and total, in seconds."""

    ttfb: float
    total: float
    size: int


@dataclass(slots=True)
class Damselfly:
    """A supernode and one peer on loopback, with the peer's registry mirror URL."""

    supernode: Proc
    peer: Proc
    mirror: str


class LoopbackBench:
    def __init__(self, settings: LoopbackSettings, workdir: Path, log: Log) -> None:
        self.settings = settings
        self.workdir = workdir
        self.log = log
        self.rundir = workdir / "runs" / f"loopback-{time.strftime('%Y%m%d-%H%M%S')}"
        self.extra: dict[str, float] = {}
        self._fresh = 0

    def run(self) -> LoopbackReport:
        s = self.settings
        self.log(f"loopback: blob of {s.blob_bytes >> 20} MiB, image of {s.image_bytes / MB:.0f} MB")
        blob = cached_blob(self.workdir / "cache", s.blob_bytes)
        image = cached_image(self.workdir / "cache", layer_sizes(s.image_bytes))
        try:
            with ProcessSet() as procs:
                blob_registry = self._registry(procs, "blob-registry", blob.storage)
                image_registry = self._registry(procs, "image-registry", image.storage)
                blob_path = f"/v2/{blob.repo}/blobs/{blob.digest}"
                comparisons = [
                    *self._blob_figures(blob_registry, blob, blob_path),
                    self._cold_pull(image_registry, image),
                    self._peak_rss(blob_registry, blob_path),
                    self._source_rate_limit(blob_registry, blob, blob_path),
                ]
        finally:
            # Stores of a gigabyte and pulled images: gone after the run, also after a failure; the logs stay.
            for bulky in ("data", "out"):
                shutil.rmtree(self.rundir / bulky, ignore_errors=True)
        return LoopbackReport(s.blob_bytes, image.info.blob_bytes, s.clients, comparisons, self.extra)

    # --- the parts -----------------------------------------------------------------------------------

    def _blob_figures(self, registry: tuple[Proc, str], blob: CachedBlob, path: str) -> list[Comparison]:
        """Cold time to first byte and warm throughput of one blob, through the proxy and direct."""
        s = self.settings
        reg_proc, reg_url = registry
        self._curl(reg_url + path)  # the registry's page cache warm, as a peer's will be
        cpu = cpu_seconds(reg_proc.pid)
        direct = [self._curl(reg_url + path) for _ in range(s.repeat)]
        self.extra["registry_cpu_seconds_per_gb"] = (cpu_seconds(reg_proc.pid) - cpu) / (s.repeat * s.blob_bytes / 1e9)
        cold: list[Fetch] = []
        warm: list[Fetch] = []
        for trial in range(s.repeat):
            with ProcessSet() as procs:
                damselfly = self._damselfly(procs, reg_url)
                self._warm_up(damselfly.mirror, blob.repo)
                cold.append(self._curl(damselfly.mirror + path))
                if trial == 0:
                    # The blob now sits in the peer's store: check it, then time it warm.
                    self._check_digest(damselfly.mirror + path, blob.digest)
                    cpu = cpu_seconds(damselfly.peer.pid)
                    warm = [self._curl(damselfly.mirror + path) for _ in range(s.repeat)]
                    self.extra["peer_cpu_seconds_per_gb_warm"] = (cpu_seconds(damselfly.peer.pid) - cpu) / (
                        s.repeat * s.blob_bytes / 1e9
                    )
        with ProcessSet() as procs:
            # The very first request of a fresh daemon also pays its lazy start-up (clients, TLS contexts).
            first = self._curl(self._damselfly(procs, reg_url).mirror + path)
            self.extra["ttfb_ms_first_request_of_a_fresh_peer"] = first.ttfb * 1000
        self.log(f"  warm MB/s: proxy {[round(f.size / f.total / MB) for f in warm]}, "
                 f"registry {[round(f.size / f.total / MB) for f in direct]}")
        self.extra["cold_blob_mb_per_s_proxy"] = statistics.median(f.size / f.total / MB for f in cold)
        warm_rate = statistics.median(f.size / f.total / MB for f in warm)
        direct_rate = statistics.median(f.size / f.total / MB for f in direct)
        ttfb = statistics.median(f.ttfb * 1000 for f in cold)
        direct_ttfb = statistics.median(f.ttfb * 1000 for f in direct)
        return [
            Comparison(
                "warm blob throughput", "MB/s", warm_rate, direct_rate, "docker-registry", "higher", "ratio ≥ 1.0",
                warm_rate >= direct_rate,
                [f.size / f.total / MB for f in warm], [f.size / f.total / MB for f in direct],
            ),
            Comparison(
                "time to first byte, cold blob", "ms", ttfb, direct_ttfb, "docker-registry", "lower",
                f"within 20 ms: {ttfb - direct_ttfb:+.1f} ms", ttfb - direct_ttfb <= 20.0,
                [f.ttfb * 1000 for f in cold], [f.ttfb * 1000 for f in direct],
            ),
        ]

    def _cold_pull(self, registry: tuple[Proc, str], image: CachedImage) -> Comparison:
        """skopeo pulling the image through a peer with an empty store, against straight from the registry."""
        _, reg_url = registry
        ref = f"{image.info.repo}:{image.info.tag}"
        direct = [self._skopeo(reg_url, ref, image) for _ in range(self.settings.repeat)]
        proxied = []
        for _ in range(self.settings.repeat):
            with ProcessSet() as procs:
                damselfly = self._damselfly(procs, reg_url)
                self._warm_up(damselfly.mirror, image.info.repo)
                proxied.append(self._skopeo(damselfly.mirror, ref, image))
        ratio = statistics.median(proxied) / statistics.median(direct)
        return Comparison(
            "cold single pull (skopeo, image)", "s", statistics.median(proxied), statistics.median(direct),
            "skopeo direct", "lower", "ratio ≤ 1.15", ratio <= 1.15, proxied, direct,
        )

    def _peak_rss(self, registry: tuple[Proc, str], path: str) -> Comparison:
        """Peak RSS of a fresh peer while `clients` read a cold blob at once, and then read it again warm."""
        reg_proc, reg_url = registry
        clients = self.settings.clients
        with ProcessSet() as procs:
            damselfly = self._damselfly(procs, reg_url)
            self._concurrent(damselfly.mirror + path, clients)
            self._concurrent(damselfly.mirror + path, clients)
            peer_peak = peak_rss_bytes(damselfly.peer.pid)
        self._concurrent(reg_url + path, clients)
        registry_peak = peak_rss_bytes(reg_proc.pid)
        return Comparison(
            f"peak RSS (VmHWM), {clients} clients cold then warm", "MB", peer_peak / MB, registry_peak / MB,
            "docker-registry's, whole run", "lower", "peer ≤ 150 MB", peer_peak <= 150 * MB,
        )

    def _source_rate_limit(self, registry: tuple[Proc, str], blob: CachedBlob, path: str) -> Comparison:
        """A peer started with `--source-rate`: the cold blob's first 200 MB must not come faster than that."""
        _, reg_url = registry
        limit_mb = 100
        span = min(200_000_000, self.settings.blob_bytes)
        with ProcessSet() as procs:
            damselfly = self._damselfly(procs, reg_url, ("--source-rate", f"{limit_mb}MB"))
            self._warm_up(damselfly.mirror, blob.repo)
            fetch = self._curl(damselfly.mirror + path, byte_range=f"0-{span - 1}")
        rate = fetch.size / fetch.total / MB
        # The bucket starts full with a tenth of a second of traffic, which comes on top of the rate.
        burst = limit_mb * MB / 10
        allowed = limit_mb * span / (span - burst)
        return Comparison(
            "cold blob with --source-rate 100MB", "MB/s", rate, float(limit_mb), "the configured limit", "lower",
            f"≤ the limit with the bucket's burst: {allowed:.0f} MB/s over {span / MB:.0f} MB", rate <= allowed,
        )

    # --- helpers -------------------------------------------------------------------------------------

    def _registry(self, procs: ProcessSet, name: str, storage: Path) -> tuple[Proc, str]:
        addr = f"127.0.0.1:{free_loopback_port()}"
        proc = procs.start(registry_proc(self.rundir, name, registry_config(storage, addr, readonly=True)))
        proc.wait_for_log(READY_LINE, 20.0)
        return proc, f"http://{addr}"

    def _damselfly(self, procs: ProcessSet, upstream: str, extra: tuple[str, ...] = ()) -> Damselfly:
        self._fresh += 1
        n = self._fresh
        sn_port, mirror_port, upload_port = free_loopback_port(), free_loopback_port(), free_loopback_port()
        supernode = procs.start(
            Proc(python_cmd("supernode", "--listen", f"127.0.0.1:{sn_port}", "--no-manager"),
                 log_path=self.rundir / f"supernode-{n}.log", name="supernode", env=python_env())
        )
        # Peers come one after another: the previous one has stopped, and its gigabyte of store can go.
        shutil.rmtree(self.rundir / "data", ignore_errors=True)
        data_dir = self.rundir / "data" / f"peer-{n}"
        peer = procs.start(
            Proc(
                python_cmd(
                    "peer", "--supernode", f"http://127.0.0.1:{sn_port}", "--listen", f"127.0.0.1:{mirror_port}",
                    "--upload-listen", f"127.0.0.1:{upload_port}", "--data-dir", str(data_dir), "--upstream", upstream,
                    "--files-listen", f"127.0.0.1:{free_loopback_port()}",
                    *extra,
                ),
                log_path=self.rundir / f"peer-{n}.log", name="peer", env=python_env(),
            )
        )
        supernode.wait_for_http(f"http://127.0.0.1:{sn_port}/healthz", 60.0)
        peer.wait_for_http(f"http://127.0.0.1:{mirror_port}/healthz", 60.0)
        return Damselfly(supernode, peer, f"http://127.0.0.1:{mirror_port}")

    def _warm_up(self, mirror: str, repo: str) -> None:
        """One request through a fresh daemon to the upstream (for a blob that does not exist), so that cold
        figures measure a cold blob, not the daemon's own lazy start-up."""
        run(["curl", "-s", "-o", "/dev/null", "-I", f"{mirror}/v2/{repo}/blobs/sha256:{'0' * 64}"], timeout=30.0)

    def _curl(self, url: str, byte_range: str = "") -> Fetch:
        # Each sample is a new curl process with its own connection, as a fresh client pull would be.
        ranged = ["-r", byte_range] if byte_range else []
        out = run(
            ["curl", "-s", "-o", "/dev/null", "--max-time", str(int(self.settings.timeout)), *ranged,
             "-w", "%{http_code} %{size_download} %{time_starttransfer} %{time_total}", url],
            timeout=self.settings.timeout + 10,
        ).stdout.split()
        if out[0] != ("206" if byte_range else "200"):
            raise CommandFailed(f"GET {url} answered {out[0]}")
        return Fetch(ttfb=float(out[2]), total=float(out[3]), size=int(out[1]))

    def _concurrent(self, url: str, clients: int) -> None:
        args = ["curl", "-sf", "-o", "/dev/null", "--max-time", str(int(self.settings.timeout)), url]
        procs = [subprocess.Popen(args, env=clean_env()) for _ in range(clients)]
        try:
            codes = [p.wait(self.settings.timeout + 10) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait(10)
        if any(codes):
            raise CommandFailed(f"concurrent GET {url} failed: exit codes {codes}")

    def _check_digest(self, url: str, digest: str) -> None:
        hasher = hashlib.sha256()
        with httpx.stream("GET", url, trust_env=False, timeout=self.settings.timeout) as response:
            for chunk in response.iter_raw(1 << 20):
                hasher.update(chunk)
        if "sha256:" + hasher.hexdigest() != digest:
            raise CommandFailed(f"the proxy served a blob that does not match {digest}")

    def _skopeo(self, registry_url: str, ref: str, image: CachedImage) -> float:
        out = self.rundir / "out"
        shutil.rmtree(out, ignore_errors=True)
        start = time.monotonic()
        run(skopeo_args(f"{registry_url.removeprefix('http://')}/{ref}", out), timeout=self.settings.timeout)
        seconds = time.monotonic() - start
        problems = verify_pull(out, image.info)
        shutil.rmtree(out, ignore_errors=True)
        if problems:
            raise CommandFailed(f"pull of {ref} from {registry_url} is wrong: {problems[:3]}")
        return seconds
