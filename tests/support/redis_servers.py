"""Throwaway Redis processes from Debian's packages on loopback ports: one server, or a master with a replica and
three Sentinels watching it (`redis-sentinel`, or `redis-server --sentinel`, the same binary). Nothing persisted;
every process and its directory are gone afterwards."""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
from pathlib import Path

from tests.support.ports import LOOPBACK, free_port
from tests.support.procs import ManagedProcess

MASTER_NAME = "damselfly"


class RedisMissing(RuntimeError):
    pass


def _binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise RedisMissing("redis-server not found (Debian package redis-server)")
    return found


def _sentinel_command(conf: Path) -> list[str]:
    """Debian's redis-sentinel (package redis-sentinel), else the same program as `redis-server --sentinel`."""
    found = shutil.which("redis-sentinel")
    return [found, str(conf)] if found else [_binary(), str(conf), "--sentinel"]


def ping(port: int, timeout: float = 0.5) -> str:
    """One inline command's first answer line from the Redis (or Sentinel) on `port`; "" if nothing answered."""
    return command(port, "PING", timeout=timeout)


def command(port: int, *words: str, timeout: float = 0.5) -> str:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
            sock.sendall((" ".join(words) + "\r\n").encode())
            return sock.recv(4096).decode(errors="replace").split("\r\n")[0]
    except OSError:
        return ""


def _wait_answering(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while ping(port) != "+PONG":
        if time.monotonic() > deadline:
            raise TimeoutError(f"redis on port {port} did not answer PING")
        time.sleep(0.05)


class RedisServer:
    """One `redis-server` on a free loopback port; `replica_of` a master's port makes it that master's replica."""

    def __init__(self, root: Path, name: str = "redis", replica_of: int | None = None) -> None:
        self.port = free_port()
        self.dir = root / name
        self.dir.mkdir(parents=True)
        args = [_binary(), "--port", str(self.port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no",
                "--dir", str(self.dir), "--protected-mode", "no"]
        if replica_of is not None:
            args += ["--replicaof", LOOPBACK, str(replica_of)]
        self.process = ManagedProcess(args, log_path=self.dir / "log", name=name)

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self) -> RedisServer:
        self.process.start()
        _wait_answering(self.port)
        return self

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill_hard()


class Sentinels:
    """A master, one replica and three Sentinels (quorum 2) on loopback, quick to fail over (1 s down-after)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="damselfly-redis-"))
        self.master = RedisServer(self.root, "master")
        self.replica: RedisServer | None = None
        self.sentinels: list[ManagedProcess] = []
        self.sentinel_ports: list[int] = []

    @property
    def addresses(self) -> str:
        return ",".join(f"{LOOPBACK}:{port}" for port in self.sentinel_ports)

    def start(self) -> Sentinels:
        self.master.start()
        self.replica = RedisServer(self.root, "replica", replica_of=self.master.port).start()
        self._wait_replicating()
        for index in range(3):
            port = free_port()
            directory = self.root / f"sentinel{index}"
            directory.mkdir()
            conf = directory / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind {LOOPBACK}\nprotected-mode no\ndir {directory}\n"
                f"sentinel monitor {MASTER_NAME} {LOOPBACK} {self.master.port} 2\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
                f"sentinel failover-timeout {MASTER_NAME} 5000\n"
                f"sentinel parallel-syncs {MASTER_NAME} 1\n"
            )
            process = ManagedProcess(_sentinel_command(conf), log_path=directory / "log",
                                     name=f"sentinel{index}")
            process.start()
            self.sentinels.append(process)
            self.sentinel_ports.append(port)
        for port in self.sentinel_ports:
            _wait_answering(port)
        return self

    def _wait_replicating(self, timeout: float = 15.0) -> None:
        assert self.replica is not None
        deadline = time.monotonic() + timeout
        while "master_link_status:up" not in _info(self.replica.port, "replication"):
            if time.monotonic() > deadline:
                raise TimeoutError("the replica did not catch up with the master")
            time.sleep(0.1)

    def master_port(self) -> int:
        """The master's port as the first Sentinel that answers says it (0: none said)."""
        for port in self.sentinel_ports:
            answer = _bulk(port, "SENTINEL", "get-master-addr-by-name", MASTER_NAME)
            if len(answer) == 2 and answer[1].isdigit():
                return int(answer[1])
        return 0

    def stop(self) -> None:
        for process in self.sentinels:
            process.stop()
        if self.replica is not None:
            self.replica.stop()
        self.master.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _info(port: int, section: str) -> str:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1.0) as sock:
            sock.sendall(f"INFO {section}\r\n".encode())
            time.sleep(0.05)
            return sock.recv(65536).decode(errors="replace")
    except OSError:
        return ""


def _bulk(port: int, *words: str) -> list[str]:
    """The strings of a RESP array answer, read loosely (enough for a host and a port)."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1.0) as sock:
            sock.sendall((" ".join(words) + "\r\n").encode())
            time.sleep(0.05)
            lines = sock.recv(4096).decode(errors="replace").split("\r\n")
    except OSError:
        return []
    return [line for line in lines[1:] if line and not line.startswith(("$", "*"))]


class SingleRedis:
    """One Redis for a test, in its own temporary directory."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="damselfly-redis-"))
        self.server = RedisServer(self.root)

    def start(self) -> SingleRedis:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()
        shutil.rmtree(self.root, ignore_errors=True)
