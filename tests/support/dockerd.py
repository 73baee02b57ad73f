"""A private dockerd for tests, and the docker CLI against it.

Everything dockerd would share with the machine is moved into the test's directories: data root, exec root,
pidfile, API socket, and its trust key (dockerd 20.10 writes /etc/docker/key.json unless daemon.json names
another `deprecated-key-path`; found by experiment, it is not accepted as a flag). The daemon.json it reads
is the caller's, so tests can write it with `damselfly configure docker`; the keys that keep dockerd off the
host's network (`bridge: none`, no iptables) are merged in here.

Reusing a running containerd (`--containerd`) spares dockerd starting its own. Found here: dockerd 20.10
starts in about a second and pulls with overlay2.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

from tests.support.containerd import ContainerdDaemon
from tests.support.fence import clean_env, fenced_overrides
from tests.support.procs import ManagedProcess
from tests.support.root_daemon import RootDaemon

ISOLATION = {"iptables": False, "ip6tables": False, "bridge": "none"}


class DockerDaemon(RootDaemon):
    def __init__(
        self,
        workdir: Path,
        daemon_json: Path,
        *,
        containerd: ContainerdDaemon | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 15.0,
    ) -> None:
        self.workdir = workdir
        self.daemon_json = daemon_json
        self.containerd = containerd
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.rundir: Path | None = None
        self.process: ManagedProcess | None = None

    @property
    def socket(self) -> str:
        assert self.rundir is not None, "dockerd not started"
        return str(self.rundir / "d.sock")

    def start(self) -> Self:
        if shutil.which("dockerd") is None or shutil.which("docker") is None:
            raise FileNotFoundError("dockerd/docker not on PATH (apt-get install --no-install-recommends docker.io)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.rundir = Path(tempfile.mkdtemp(prefix="dfly-dkd-", dir="/tmp"))
        config = json.loads(self.daemon_json.read_text()) if self.daemon_json.exists() else {}
        config.update(ISOLATION)
        config["deprecated-key-path"] = str(self.workdir / "key.json")
        self.daemon_json.write_text(json.dumps(config, indent=2) + "\n")
        args = [
            "dockerd",
            "--config-file", str(self.daemon_json),
            "--data-root", str(self.workdir / "data"),
            "--exec-root", str(self.rundir / "exec"),
            "--pidfile", str(self.rundir / "docker.pid"),
            "--host", f"unix://{self.socket}",
        ]
        if self.containerd is not None:
            args += ["--containerd", self.containerd.address]
        self.process = ManagedProcess(
            args,
            log_path=self.workdir / "dockerd.log",
            env=fenced_overrides(),
            stop_timeout=self.stop_timeout,
            name="dockerd",
        ).start()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout
        last = ""
        while time.monotonic() < deadline:
            if not self.process.is_running():
                raise RuntimeError(f"dockerd exited:\n{self.process.log_text(tail=4000)}")
            try:
                if _ping(self.socket):
                    return
            except OSError as exc:
                last = repr(exc)
            time.sleep(0.1)
        log = self.process.log_text(tail=4000)
        raise TimeoutError(f"dockerd not ready after {self.start_timeout}s ({last}):\n{log}")

    def reload_config(self, timeout: float = 10.0) -> None:
        """`kill -HUP`, as an operator reloads `registry-mirrors` after `damselfly configure docker`; returns once
        `docker info` shows the file's mirrors."""
        assert self.process is not None, "dockerd not started"
        wanted = [m.rstrip("/") for m in json.loads(self.daemon_json.read_text()).get("registry-mirrors", [])]
        os.kill(self.process.pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while True:
            shown = self.docker(["info", "--format", "{{json .RegistryConfig.Mirrors}}"]).stdout
            mirrors = [m.rstrip("/") for m in json.loads(shown) or []]
            if mirrors == wanted:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"dockerd shows mirrors {mirrors} after SIGHUP, not {wanted}")
            time.sleep(0.1)

    def image_id(self, ref: str) -> str | None:
        """The image's id, None if dockerd has no image by that name."""
        found = self.docker(["image", "inspect", "--format", "{{.Id}}", ref], check=False)
        return found.stdout.strip() if found.returncode == 0 else None

    def docker(
        self, args: list[str], *, timeout: float = 120.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        # Its own CLI config directory: no credentials or contexts of the machine's user leak in.
        cli_config = self.workdir / "cli"
        cli_config.mkdir(exist_ok=True)
        cmd = ["docker", "--host", f"unix://{self.socket}", *args]
        result = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=clean_env({"DOCKER_CONFIG": str(cli_config)})
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {result.returncode}:\n{result.stderr}{result.stdout}")
        return result


def _ping(socket_path: str, timeout: float = 2.0) -> bool:
    """`GET /_ping` on the API socket. A raw socket, closed on every path (httpx leaks one on refused UDS)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(socket_path)
        sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    return answer.startswith(b"HTTP/1.") and b" 200 " in answer.split(b"\r\n", 1)[0] and answer.endswith(b"OK")
