"""One Damselfly host for client tests: `damselfly up` (supernode and peer in one process) on loopback.

Unlike ``DamselflyCluster`` it takes the whole upstream configuration as data (no ``--upstream`` flag, so the
default registry may be one that requires credentials), can serve https, and waits on ``/healthz`` rather than
on ``/v2/``, whose answer depends on the default upstream's auth.

    with MirrorHost(tmp_path / "mirror", [Upstream("reg-1.example.test", registry.url)]) as mirror:
        mirror.mirror_host     # 127.0.0.1:PORT, for registries.conf, hosts.toml, daemon.json
"""

from __future__ import annotations

import json
import ssl
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from tests.support.cluster import CLEAN_ENV
from tests.support.ports import free_port
from tests.support.procs import ManagedProcess
from tests.support.tls import IssuedCert

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Upstream:
    """A `[[registry]]` entry of the Damselfly config."""

    name: str
    url: str
    username: str = ""
    password: str = ""
    ca_file: str = ""
    library_prefix: bool = False
    # CIDRs its redirects may lead to (a test's object store on loopback).
    redirect_networks: tuple[str, ...] = ()

    def toml(self) -> str:
        lines = ["[[registry]]"]
        for key, value in (
            ("name", self.name), ("url", self.url), ("username", self.username), ("password", self.password),
            ("ca_file", self.ca_file),
        ):
            if value:
                lines.append(f"{key} = {json.dumps(value)}")
        if self.library_prefix:
            lines.append("library_prefix = true")
        if self.redirect_networks:
            lines.append(f"redirect_networks = {json.dumps(list(self.redirect_networks))}")
        return "\n".join(lines) + "\n"


@dataclass
class MirrorHost:
    workdir: Path
    upstreams: list[Upstream]
    default_registry: str = ""
    allow: list[str] = field(default_factory=list)
    tls: IssuedCert | None = None
    ca_file: Path | None = None  # what the readiness check trusts when `tls` is set
    ready_timeout: float = 30.0
    port: int = 0
    process: ManagedProcess | None = None

    @property
    def mirror_host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def mirror_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.mirror_host}"

    def config_text(self) -> str:
        proxy = [f"default_registry = {json.dumps(self.default_registry or self.upstreams[0].name)}"]
        proxy.append(f"allow = {json.dumps(self.allow)}")
        if self.tls is not None:
            proxy.append(f"tls_cert = {json.dumps(str(self.tls.cert_path))}")
            proxy.append(f"tls_key = {json.dumps(str(self.tls.key_path))}")
        return "[proxy]\n" + "\n".join(proxy) + "\n\n" + "\n".join(u.toml() for u in self.upstreams)

    def start(self) -> MirrorHost:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "damselfly.toml"
        config.write_text(self.config_text())
        self.port = free_port()
        args = [
            sys.executable, "-m", "damselfly", "up", "--config", str(config),
            "--listen", self.mirror_host,
            "--upload-listen", f"127.0.0.1:{free_port()}",
            "--files-listen", f"127.0.0.1:{free_port()}",
            "--supernode-listen", f"127.0.0.1:{free_port()}",
            "--data-dir", str(self.workdir / "data"),
            "--supernode-data-dir", str(self.workdir / "supernode"),
        ]
        self.process = ManagedProcess(
            args, log_path=self.workdir / "damselfly.log", env=CLEAN_ENV, cwd=REPO_ROOT, name="damselfly-up"
        ).start()
        try:
            self._wait_ready()
        except BaseException:
            self.process.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file else True
        deadline = time.monotonic() + self.ready_timeout
        last = ""
        with httpx.Client(verify=verify, trust_env=False, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if not self.process.is_running():
                    raise RuntimeError(f"damselfly up exited:\n{self.process.log_text(tail=4000)}")
                try:
                    if client.get(f"{self.mirror_url}/healthz").status_code == 200:
                        return
                except httpx.HTTPError as exc:
                    last = repr(exc)
                time.sleep(0.05)
        raise TimeoutError(f"damselfly up not ready after {self.ready_timeout}s ({last}):\n{self.log_tail()}")

    def log_tail(self) -> str:
        return self.process.log_text(tail=4000) if self.process is not None else ""

    def stats(self) -> dict[str, Any]:
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file else True
        response = httpx.get(f"{self.mirror_url}/stats", timeout=10.0, trust_env=False, verify=verify)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def __enter__(self) -> MirrorHost:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
