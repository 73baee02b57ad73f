"""A private containerd for tests, and `ctr` against it.

Each daemon gets its own root, state, sockets and opt directory, with the CRI plugin disabled, so it never
touches the machine's /var/lib/containerd or /run/containerd and several can run at once. Sockets live in a
short directory under /tmp (a unix socket path must fit in 108 bytes; pytest's tmp paths may not).

Found by running containerd 1.6.20 here: it boots in well under a second; `ctr images pull` does the registry
traffic itself (in the ctr process), unpacks into the overlayfs snapshotter and leaves no mount behind.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

from tests.support.fence import clean_env, fenced_overrides
from tests.support.procs import ManagedProcess
from tests.support.root_daemon import RootDaemon


class ContainerdDaemon(RootDaemon):
    def __init__(self, workdir: Path, *, start_timeout: float = 20.0, stop_timeout: float = 10.0) -> None:
        self.workdir = workdir
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.rundir: Path | None = None
        self.process: ManagedProcess | None = None

    @property
    def address(self) -> str:
        assert self.rundir is not None, "containerd not started"
        return str(self.rundir / "c.sock")

    def config_text(self) -> str:
        assert self.rundir is not None
        q = json.dumps  # a JSON string of a path is a valid TOML string
        return "\n".join(
            [
                "version = 2",
                f"root = {q(str(self.workdir / 'root'))}",
                f"state = {q(str(self.rundir / 'state'))}",
                'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
                "[grpc]",
                f"  address = {q(self.address)}",
                "[ttrpc]",
                f"  address = {q(self.address + '.ttrpc')}",
                "[debug]",
                '  address = ""',
                "[metrics]",
                '  address = ""',
                '[plugins."io.containerd.internal.v1.opt"]',
                f"  path = {q(str(self.workdir / 'opt'))}",
                "",
            ]
        )

    def start(self) -> Self:
        if shutil.which("containerd") is None or shutil.which("ctr") is None:
            raise FileNotFoundError("containerd/ctr not on PATH (apt-get install containerd)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.rundir = Path(tempfile.mkdtemp(prefix="dfly-ctd-", dir="/tmp"))
        config = self.workdir / "config.toml"
        config.write_text(self.config_text())
        self.process = ManagedProcess(
            ["containerd", "--config", str(config)],
            log_path=self.workdir / "containerd.log",
            env=fenced_overrides(),
            stop_timeout=self.stop_timeout,
            name="containerd",
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
                raise RuntimeError(f"containerd exited:\n{self.process.log_text(tail=4000)}")
            if Path(self.address).exists():
                result = self.ctr(["version"], check=False, timeout=5.0)
                if result.returncode == 0:
                    return
                last = result.stderr
            time.sleep(0.05)
        raise TimeoutError(f"containerd not ready after {self.start_timeout}s: {last}")

    def ctr(
        self, args: list[str], *, namespace: str = "default", timeout: float = 120.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        cmd = ["ctr", "--address", self.address, "--namespace", namespace, *args]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=clean_env())
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {result.returncode}:\n{result.stderr}{result.stdout}")
        return result
