"""The file storm (`damselfly bench --scenarios files`): N hosts fetch one large file at once from a real web server.

The origin is Debian's nginx in its own namespace behind the shaped upstream link, serving one random file. Each
round runs two storms one after the other, in the same network: **direct** (every host's `curl` fetches from the
origin) and **Damselfly** (a supernode and a peer on every host, started fresh and cold for the round; every host
runs `damselfly get URL -o PATH` against its own daemon). What the origin sent is counted from nginx's access log
(`$body_bytes_sent` of each GET); every host's file is hashed against the file's sha256 after the storm. Rounds are
repeated so the report shows the spread, not one sample.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .cluster import python_cmd, python_env
from .machine import CpuMeter
from .netns import Host, Topology
from .procs import Proc, ProcessSet, cpu_seconds, run_together

ORIGIN_PORT = 8080
SUPERNODE_PORT = 8002
MIRROR = "127.0.0.1:65001"
FILES_DAEMON = "127.0.0.1:65003"
UPLOAD_PORT = 65002
FILE_NAME = "big.bin"
MODES = ("direct", "damselfly")
Log = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class FileStormSettings:
    hosts: int = 8
    upstream_mbit: int = 100
    host_mbit: int = 1000
    file_bytes: int = 200_000_000
    repeat: int = 3
    fetch_timeout: float = 900.0
    start_timeout: float = 60.0
    log_level: str = "info"


@dataclass(slots=True)
class FileStorm:
    """One storm: every host fetched the file once, one way."""

    mode: str
    round: int
    host_seconds: list[float]
    # Body bytes nginx sent for GETs of the file during the storm.
    origin_bytes: int
    # Every host's file has the right length and sha256.
    files_ok: bool
    failures: list[str] = field(default_factory=list)
    cpu_busy: float = 0.0
    # The Damselfly daemons' CPU seconds during the round (0 for direct).
    daemon_cpu_seconds: float = 0.0

    @property
    def all_done(self) -> float:
        return max(self.host_seconds) if self.host_seconds else 0.0


@dataclass(slots=True)
class FileStormReport:
    hosts: int
    upstream_mbit: int
    host_mbit: int
    file_bytes: int
    storms: list[FileStorm]

    @property
    def link_seconds(self) -> float:
        """What the upstream link needs to send the file once at its configured rate."""
        return self.file_bytes * 8 / (self.upstream_mbit * 1e6)

    def of(self, mode: str) -> list[FileStorm]:
        return [s for s in self.storms if s.mode == mode]


class FileStormBench:
    def __init__(self, settings: FileStormSettings, workdir: Path, log: Log) -> None:
        self.settings = settings
        self.workdir = workdir
        self.log = log

    def run(self) -> FileStormReport:
        s = self.settings
        content, sha256 = self._file()
        storms: list[FileStorm] = []
        with Topology() as topo, ProcessSet() as procs:
            rundir = self.workdir / "runs" / topo.name
            self.log(f"network {topo.name}: {s.hosts} hosts, origin {s.upstream_mbit} Mbit/s, logs in {rundir}")
            origin = topo.add_host("origin", 1, s.upstream_mbit)
            sn = topo.add_host("sn", 3, s.host_mbit)
            hosts = [topo.add_host(f"h{i}", 11 + i, s.host_mbit) for i in range(s.hosts)]
            nginx = _Nginx(rundir / "nginx", content, origin)
            procs.start(nginx.proc()).wait_for_http(f"{nginx.url}/healthz", s.start_timeout, origin.cmd())
            for round_no in range(1, s.repeat + 1):
                for mode in MODES:
                    storm = self._storm(mode, round_no, rundir / f"{mode}-{round_no}", nginx, sn, hosts, sha256)
                    self.log(
                        f"  round {round_no} {mode}: all done {storm.all_done:.1f}s "
                        f"({storm.all_done / self._link():.2f}x link time), origin sent "
                        f"{storm.origin_bytes / s.file_bytes:.2f}x the file, files right: {storm.files_ok}"
                    )
                    storms.append(storm)
        return FileStormReport(s.hosts, s.upstream_mbit, s.host_mbit, s.file_bytes, storms)

    def _link(self) -> float:
        return self.settings.file_bytes * 8 / (self.settings.upstream_mbit * 1e6)

    def _file(self) -> tuple[Path, str]:
        """The random file of the configured size (kept between runs: writing 200 MB of randomness takes a while)."""
        size = self.settings.file_bytes
        path = self.workdir / "cache" / f"file-{size}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.stat().st_size != size:
            self.log(f"writing a random file of {size / 1e6:.0f} MB")
            tmp = path.with_suffix(".tmp")
            with tmp.open("wb") as out:
                left = size
                while left:
                    chunk = os.urandom(min(left, 1 << 22))
                    out.write(chunk)
                    left -= len(chunk)
            tmp.replace(path)
        with path.open("rb") as file:
            return path, hashlib.file_digest(file, "sha256").hexdigest()

    def _storm(
        self, mode: str, round_no: int, rundir: Path, nginx: _Nginx, sn: Host, hosts: list[Host], sha256: str
    ) -> FileStorm:
        s = self.settings
        outputs = {host.role: rundir / "out" / host.role / FILE_NAME for host in hosts}
        try:
            with ProcessSet() as procs:
                daemons = self._start_damselfly(procs, rundir, nginx, sn, hosts) if mode == "damselfly" else []
                offset = nginx.log_offset()
                meter = CpuMeter()
                commands = [
                    (host, _fetch_command(mode, nginx.file_url, outputs[host.role], sha256)) for host in hosts
                ]
                seconds, failures = _fetch_everywhere(commands, rundir, s.fetch_timeout)
                busy = meter.busy()
                cpu = sum(cpu_seconds(d.pid) for d in daemons)
                origin_bytes = nginx.sent_since(offset)
            for host in hosts:
                problem = _file_problem(outputs[host.role], s.file_bytes, sha256)
                if problem:
                    failures.append(f"{host.role}: {problem}")
            return FileStorm(mode, round_no, seconds, origin_bytes, not failures, failures[:20], busy, cpu)
        finally:
            # A round's files and stores are big and of no use afterwards; the logs stay.
            for bulky in ("out", "data"):
                shutil.rmtree(rundir / bulky, ignore_errors=True)

    def _start_damselfly(
        self, procs: ProcessSet, rundir: Path, nginx: _Nginx, sn: Host, hosts: list[Host]
    ) -> list[Proc]:
        s = self.settings
        # Beyond loopback the daemons need the cluster's secret, from the environment (never argv).
        env = {**python_env(), "DAMSELFLY_JOIN_TOKEN": secrets.token_urlsafe(32)}
        supernode_url = f"http://{sn.ip}:{SUPERNODE_PORT}"
        supernode = procs.start(Proc(
            sn.cmd(*python_cmd("supernode", "--listen", f"0.0.0.0:{SUPERNODE_PORT}", "--no-manager",
                               "--log-level", s.log_level)),
            log_path=rundir / "supernode.log", name="supernode", env=env,
        ))
        supernode.wait_for_http(f"{supernode_url}/healthz", s.start_timeout, sn.cmd())
        # The files endpoint fetches only from configured origins: this run's nginx.
        config = rundir / "peer.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(f'[[file_origin]]\nurl = "{nginx.url}/"\n')
        peers: list[tuple[Host, Proc]] = []
        for host in hosts:
            args = python_cmd(
                "peer", "--config", str(config), "--supernode", supernode_url, "--listen", MIRROR,
                "--upload-listen", f"0.0.0.0:{UPLOAD_PORT}", "--files-listen", FILES_DAEMON,
                "--data-dir", str(rundir / "data" / host.role),
                "--advertise", host.ip, "--log-level", s.log_level,
            )
            peer = procs.start(Proc(host.cmd(*args), log_path=rundir / f"peer-{host.role}.log",
                                    name=f"peer-{host.role}", env=env))
            peers.append((host, peer))
        for host, peer in peers:
            peer.wait_for_http(f"http://{MIRROR}/healthz", s.start_timeout, host.cmd())
        return [supernode, *(p for _, p in peers)]


def _fetch_command(mode: str, url: str, out: Path, sha256: str) -> list[str]:
    if mode == "direct":
        return ["curl", "-sS", "--fail", "--max-time", "900", "-o", str(out), url]
    return python_cmd("get", url, "-o", str(out), "--digest", f"sha256:{sha256}", "--quiet",
                      "--daemon", f"http://{FILES_DAEMON}")


def _fetch_everywhere(
    commands: list[tuple[Host, list[str]]], logs: Path, timeout: float
) -> tuple[list[float], list[str]]:
    """Start every host's fetch at the same moment; each host's seconds, and what failed."""
    procs = []
    for host, args in commands:
        out = Path(args[args.index("-o") + 1])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)
        procs.append(Proc(host.cmd(*args), log_path=logs / f"fetch-{host.role}.log", name=host.role,
                          env=python_env()))
    start, ends, codes = run_together(procs, timeout)
    seconds = [(end - start) if end is not None else timeout for end in ends]
    failures = [
        f"{host.role}: exit {code}: {' '.join(proc.log_text(300).split())}"
        for (host, _), proc, code in zip(commands, procs, codes, strict=True)
        if code != 0
    ]
    return seconds, failures


def _file_problem(path: Path, size: int, sha256: str) -> str:
    if not path.exists():
        return "no file written"
    if path.stat().st_size != size:
        return f"{path.stat().st_size} bytes, expected {size}"
    with path.open("rb") as file:
        got = hashlib.file_digest(file, "sha256").hexdigest()
    return "" if got == sha256 else f"content hashes to {got}"


class _Nginx:
    """Debian's nginx in the origin's namespace, serving the one file, logging the body bytes of every answer."""

    def __init__(self, workdir: Path, content: Path, host: Host) -> None:
        self.workdir = workdir
        self.content = content
        self.host = host

    @property
    def url(self) -> str:
        return f"http://{self.host.ip}:{ORIGIN_PORT}"

    @property
    def file_url(self) -> str:
        return f"{self.url}/{FILE_NAME}"

    @property
    def access_log(self) -> Path:
        return self.workdir / "access.log"

    def proc(self) -> Proc:
        root = self.workdir / "root"
        root.mkdir(parents=True, exist_ok=True)
        target = root / FILE_NAME
        target.unlink(missing_ok=True)
        target.symlink_to(self.content.resolve())
        # What readiness asks for: a 200 without sending the big file over the shaped link.
        (root / "healthz").write_text("ok\n")
        temp = self.workdir / "temp"
        for kind in ("client", "proxy", "fastcgi", "uwsgi", "scgi"):
            (temp / kind).mkdir(parents=True, exist_ok=True)
        user = pwd.getpwuid(os.geteuid()).pw_name
        config = self.workdir / "nginx.conf"
        config.write_text(f"""
user {user};
daemon off;
worker_processes 2;
pid {self.workdir}/nginx.pid;
error_log {self.workdir}/error.log warn;
events {{ worker_connections 512; }}
http {{
    log_format sent '$request_method $uri $status $body_bytes_sent';
    access_log {self.access_log} sent;
    client_body_temp_path {temp}/client;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    default_type application/octet-stream;
    sendfile on;
    disable_symlinks off;
    server {{
        listen 0.0.0.0:{ORIGIN_PORT};
        root {root};
    }}
}}
""")
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        return Proc(self.host.cmd(binary, "-p", str(self.workdir), "-e", str(self.workdir / "error.log"),
                                  "-c", str(config)), log_path=self.workdir / "nginx.out", name="nginx")

    def log_offset(self) -> int:
        try:
            return self.access_log.stat().st_size
        except FileNotFoundError:
            return 0

    def sent_since(self, offset: int, settle: float = 1.0) -> int:
        """Body bytes of GETs of the file logged after `offset`; nginx logs an answer when it ends, so wait until
        the log has been quiet for `settle` seconds (a fetch cut short still logs what it sent)."""
        size = -1
        while size != self.log_offset():
            size = self.log_offset()
            time.sleep(settle)
        with self.access_log.open("rb") as log:
            log.seek(offset)
            lines = log.read().decode(errors="replace").splitlines()
        total = 0
        for line in lines:
            parts = line.split()
            if len(parts) == 4 and parts[0] == "GET" and parts[1] == f"/{FILE_NAME}":
                total += int(parts[3])
        return total
