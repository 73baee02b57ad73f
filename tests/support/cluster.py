"""A Damselfly cluster of real processes on loopback: one supernode and N peers, each its own daemon.

    with DamselflyCluster(tmp_path, upstream_url=registry.url, peers=3) as cluster:
        cluster.peers[0].mirror_url        # the registry mirror clients are pointed at
        cluster.peers[0].stats()           # the peer's counters (bytes from upstream, from peers, ...)
        cluster.peers[1].process.kill_hard()
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from tests.support.ports import free_port
from tests.support.procs import ManagedProcess, ProcessExitedError

# Keep proxy settings of the machine away from loopback traffic, and secrets of the caller's from the daemons.
CLEAN_ENV: dict[str, str | None] = {
    "http_proxy": None, "https_proxy": None, "HTTP_PROXY": None, "HTTPS_PROXY": None, "ALL_PROXY": None,
    "DAMSELFLY_JOIN_TOKEN": None, "DAMSELFLY_OPERATOR_TOKEN": None, "DAMSELFLY_CLUSTER_TOKEN": None,
}


def env_with_token(join_token: str, operator_token: str = "") -> dict[str, str | None]:
    """CLEAN_ENV with the cluster's secret and the operators' token, which daemons take from the environment
    (never from argv); an empty one is left unset."""
    return {**CLEAN_ENV, "DAMSELFLY_JOIN_TOKEN": join_token or None, "DAMSELFLY_OPERATOR_TOKEN": operator_token or None}


@dataclass
class PeerProcess:
    index: int
    mirror_port: int
    upload_port: int
    data_dir: Path
    args: list[str]
    log_path: Path
    process: ManagedProcess
    join_token: str = ""
    files_port: int = 0

    @property
    def files_url(self) -> str:
        """The peer's files endpoint (proxy/files.py), what `damselfly get --daemon` is given."""
        return f"http://127.0.0.1:{self.files_port}"

    @property
    def mirror_url(self) -> str:
        return f"http://127.0.0.1:{self.mirror_port}"

    @property
    def mirror_host(self) -> str:
        return f"127.0.0.1:{self.mirror_port}"

    def stats(self) -> dict[str, Any]:
        response = httpx.get(self.mirror_url + "/stats", timeout=10.0, trust_env=False)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def restart(self) -> None:
        """Start the same peer again (same ports, same data directory) after it stopped or was killed."""
        self.process.stop()
        self.process = _start(
            self.args, self.log_path, self.mirror_url + "/healthz", f"peer{self.index}", self.join_token
        )


@dataclass
class DamselflyCluster:
    workdir: Path
    upstream_url: str
    peers_count: int = 3
    config_text: str = ""
    join_token: str = ""
    # The supernode's operators' token: set it to read the listings from outside (`supernode_peers`).
    operator_token: str = ""
    extra_peer_args: list[str] = field(default_factory=list)
    # More flags of the cluster's supernode (e.g. `--redis URL`: the supernode directory).
    supernode_args: list[str] = field(default_factory=list)
    supernode_port: int = 0
    supernode: ManagedProcess | None = None
    peers: list[PeerProcess] = field(default_factory=list)

    @property
    def supernode_url(self) -> str:
        return f"http://127.0.0.1:{self.supernode_port}"

    def start(self) -> DamselflyCluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.start_supernode()
        for index in range(self.peers_count):
            self.add_peer(index)
        return self

    def start_supernode(self) -> None:
        if not self.supernode_port:
            self.supernode_port = free_port()
        # Its own data directory: not /var/lib of the machine, shared with other runs. Without the platform: these
        # clusters test the data plane, and the platform's start (migrations, the admin's argon2 hash) would take the
        # CPU of a 2-core machine from timed pulls; tests/manager starts supernodes that host it.
        args = [sys.executable, "-m", "damselfly", "supernode", "--listen", f"127.0.0.1:{self.supernode_port}",
                "--data-dir", str(self.workdir / "supernode-data"), "--no-manager", *self.supernode_args]
        self.supernode = _start(
            args, self.workdir / "supernode.log", self.supernode_url + "/healthz", "supernode", self.join_token,
            self.operator_token,
        )

    def add_peer(
        self, index: int, extra_args: list[str] | None = None, entry: str = "damselfly", wrap: list[str] | None = None
    ) -> PeerProcess:
        """Start a peer: `python -m <entry> peer ...`; a test entry point such as tests.support.faulty_peer
        takes the same flags as `damselfly` and wires a faulty peer. `wrap` goes before the command (a program that
        execs it, e.g. in a namespace of its own)."""
        # A port the kernel handed out free may be taken by another test worker before the peer binds it: then
        # the peer says so and exits, and it is started again on other ports (the product is not at fault).
        for attempt in range(3):
            mirror_port, upload_port, files_port = free_port(), free_port(), free_port()
            args = self._peer_args(index, mirror_port, upload_port, files_port, extra_args, entry, wrap)
            log_path = self.workdir / f"peer{index}.log"
            try:
                process = _start(args, log_path, f"http://127.0.0.1:{mirror_port}/healthz", f"peer{index}",
                                 self.join_token)
                break
            except ProcessExitedError as exc:
                if attempt == 2 or "Address already in use" not in str(exc):
                    raise
        data_dir = self.workdir / f"peer{index}"
        peer = PeerProcess(
            index, mirror_port, upload_port, data_dir, args, log_path, process, self.join_token, files_port
        )
        self.peers.append(peer)
        return peer

    def _peer_args(
        self, index: int, mirror_port: int, upload_port: int, files_port: int, extra_args: list[str] | None,
        entry: str, wrap: list[str] | None,
    ) -> list[str]:
        args = [
            sys.executable, "-m", entry, "peer",
            "--supernode", self.supernode_url,
            "--listen", f"127.0.0.1:{mirror_port}",
            "--upload-listen", f"127.0.0.1:{upload_port}",
            "--files-listen", f"127.0.0.1:{files_port}",
            "--data-dir", str(self.workdir / f"peer{index}"),
            "--upstream", self.upstream_url,
            *self.extra_peer_args, *(extra_args or []),
        ]
        if self.config_text:
            config_path = self.workdir / "damselfly.toml"
            config_path.write_text(self.config_text)
            args += ["--config", str(config_path)]
        return [*(wrap or []), *args]

    def stop(self) -> None:
        for peer in self.peers:
            peer.process.stop()
        if self.supernode is not None:
            self.supernode.stop()

    def __enter__(self) -> DamselflyCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _start(
    args: list[str], log_path: Path, ready_url: str, name: str, join_token: str = "", operator_token: str = ""
) -> ManagedProcess:
    return ManagedProcess(
        args, log_path=log_path, env=env_with_token(join_token, operator_token), ready_url=ready_url,
        ready_timeout=30.0, name=name, cwd=Path(__file__).resolve().parents[2],
    ).start()
