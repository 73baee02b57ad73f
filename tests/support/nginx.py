"""Debian's nginx as a file origin on loopback, with its own generated configuration, in the foreground.

    with NginxOrigin(tmp_path / "nginx") as origin:
        (origin.root / "big.bin").write_bytes(data)
        origin.url + "/big.bin"
        origin.sent_bytes("/big.bin")     # body bytes nginx sent for GETs of it, from its access log

Everything it writes (pid, logs, temp dirs) stays in its directory; no root is needed (a high port). Under
`/slow/` every response is limited to `slow_rate` bytes per second, so a test can act while a body is on its way.
"""

from __future__ import annotations

import os
import pwd
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import pytest

from tests.support.ports import LOOPBACK, free_port
from tests.support.procs import ManagedProcess

LOG_FORMAT = "$request_method $uri $status $body_bytes_sent \"$http_range\" \"$http_if_match\""


def nginx_binary() -> str:
    path = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if path is None:
        pytest.skip("nginx is not installed (Debian package nginx; scripts/test.sh installs it as root)")
    return path


@dataclass
class AccessLine:
    method: str
    path: str
    status: int
    sent: int
    range: str
    if_match: str


@dataclass
class NginxOrigin:
    workdir: Path
    slow_rate: str = "2m"
    port: int = 0
    process: ManagedProcess | None = None

    @property
    def root(self) -> Path:
        return self.workdir / "root"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def access_log(self) -> Path:
        return self.workdir / "access.log"

    def start(self) -> NginxOrigin:
        binary = nginx_binary()
        (self.root / "slow").mkdir(parents=True, exist_ok=True)
        for temp in ("client", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.workdir / "temp" / temp).mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        temp_dir = self.workdir / "temp"
        # As root nginx would run its worker as nobody, who cannot read a test's private tmp directory.
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
        config = f"""
{user}
daemon off;
worker_processes 1;
pid {self.workdir}/nginx.pid;
error_log {self.workdir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    log_format files '{LOG_FORMAT}';
    access_log {self.access_log} files;
    client_body_temp_path {temp_dir}/client;
    proxy_temp_path {temp_dir}/proxy;
    fastcgi_temp_path {temp_dir}/fastcgi;
    uwsgi_temp_path {temp_dir}/uwsgi;
    scgi_temp_path {temp_dir}/scgi;
    default_type application/octet-stream;
    sendfile on;
    server {{
        listen {LOOPBACK}:{self.port};
        root {self.root};
        location /slow/ {{ limit_rate {self.slow_rate}; }}
    }}
}}
"""
        config_path = self.workdir / "nginx.conf"
        config_path.write_text(config)
        self.process = ManagedProcess(
            [binary, "-p", str(self.workdir), "-e", str(self.workdir / "error.log"), "-c", str(config_path)],
            log_path=self.workdir / "nginx.out", ready_url=self.url + "/", ready_status=None, name="nginx",
        ).start()
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def lines(self) -> list[AccessLine]:
        if not self.access_log.exists():
            return []
        found = []
        for line in self.access_log.read_text().splitlines():
            method, path, status, sent, rest = line.split(" ", 4)
            range_value, _, if_match = rest.partition(" ")
            found.append(AccessLine(method, path, int(status), int(sent), range_value.strip('"'), if_match.strip('"')))
        return found

    def sent_bytes(self, path: str) -> int:
        """Body bytes nginx sent answering GETs of `path` (HEADs send none)."""
        return sum(line.sent for line in self.lines() if line.method == "GET" and line.path == path)

    def __enter__(self) -> NginxOrigin:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
