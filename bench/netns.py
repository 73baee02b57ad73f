"""A private network of hosts on one machine: network namespaces hanging off one bridge through shaped veths.

    switch namespace <prefix>-sw: bridge br0, one veth end per host (egress shaped: the host's download)
    host namespace   <prefix>-<role>: eth0 with 10.213.<net>.<octet>/24 (egress shaped: the host's upload)

The bridge lives in a namespace of its own, so the machine's own namespace gets no interface, address or route.
`tc tbf` shapes each direction of a host's link; it counts Ethernet frames, so TCP goodput is about 95.6% of the
configured rate (1448 bytes of payload per 1514-byte frame). Names carry a random run id, so parallel runs never
collide, and every namespace is deleted on close, which also deletes its interfaces.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from .procs import run

PREFIX = "dfb"
NETNS_DIR = Path("/run/netns")
# Where each run records its pid, so `damselfly bench --cleanup` can tell abandoned namespaces from live ones.
OWNERS_DIR = Path("/run/damselfly-bench")
TIMEOUT = 15.0


@dataclass(frozen=True, slots=True)
class Host:
    role: str
    netns: str
    ip: str
    mbit: int

    def cmd(self, *args: str) -> list[str]:
        """The command line that runs `args` inside this host's namespace."""
        return ["ip", "netns", "exec", self.netns, *args]


def tbf_args(mbit: int) -> list[str]:
    rate_bytes = mbit * 1_000_000 // 8
    # The bucket must hold a whole GSO frame (64 KiB) and a timer tick of traffic, or tbf drops and stalls.
    burst = max(256 * 1024, rate_bytes // 250)
    return ["tbf", "rate", f"{mbit}mbit", "burst", str(burst), "latency", "20ms"]


class Topology:
    def __init__(self, prefix: str = PREFIX) -> None:
        self.run_id = secrets.token_hex(3)
        self.name = f"{prefix}{self.run_id}"
        self.switch = f"{self.name}-sw"
        # Addresses only ever exist inside our own namespaces; a random /24 just makes logs of runs distinct.
        self.subnet = f"10.213.{secrets.randbelow(256)}"
        self.hosts: dict[str, Host] = {}
        self._namespaces: list[str] = []

    def __enter__(self) -> Topology:
        try:
            self._create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _create(self) -> None:
        OWNERS_DIR.mkdir(parents=True, exist_ok=True)
        (OWNERS_DIR / f"{self.name}.pid").write_text(str(os.getpid()))
        self._add_namespace(self.switch)
        run(["ip", "-n", self.switch, "link", "add", "br0", "type", "bridge"], timeout=TIMEOUT)
        run(["ip", "-n", self.switch, "link", "set", "br0", "up"], timeout=TIMEOUT)

    def _add_namespace(self, netns: str) -> None:
        run(["ip", "netns", "add", netns], timeout=TIMEOUT)
        self._namespaces.append(netns)
        run(["ip", "-n", netns, "link", "set", "lo", "up"], timeout=TIMEOUT)

    def add_host(self, role: str, octet: int, mbit: int) -> Host:
        """A namespace with one link of `mbit` Mbit/s in each direction to the bridge."""
        netns = f"{self.name}-{role}"
        port = f"p{len(self.hosts)}"
        host = Host(role, netns, f"{self.subnet}.{octet}", mbit)
        self._add_namespace(netns)
        # Created inside the switch namespace with the far end moved straight into the host: no name ever
        # appears in the machine's own namespace.
        run(["ip", "-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", netns],
            timeout=TIMEOUT)
        run(["ip", "-n", self.switch, "link", "set", port, "master", "br0", "up"], timeout=TIMEOUT)
        run(["ip", "-n", netns, "addr", "add", f"{host.ip}/24", "dev", "eth0"], timeout=TIMEOUT)
        run(["ip", "-n", netns, "link", "set", "eth0", "up"], timeout=TIMEOUT)
        run(["tc", "-n", netns, "qdisc", "add", "dev", "eth0", "root", *tbf_args(mbit)], timeout=TIMEOUT)
        run(["tc", "-n", self.switch, "qdisc", "add", "dev", port, "root", *tbf_args(mbit)], timeout=TIMEOUT)
        self.hosts[role] = host
        return host

    def sent_bytes(self, host: Host) -> int:
        """Bytes (Ethernet frames) the host has sent on its link, from its tbf qdisc."""
        out = run(["tc", "-n", host.netns, "-s", "-j", "qdisc", "show", "dev", "eth0"], timeout=TIMEOUT).stdout
        return sum(int(q.get("bytes", 0)) for q in json.loads(out) if q.get("kind") == "tbf")

    def close(self) -> None:
        """Delete every namespace of this run; processes still inside (started by this run) are killed first."""
        for netns in reversed(self._namespaces):
            delete_namespace(netns)
        self._namespaces.clear()
        (OWNERS_DIR / f"{self.name}.pid").unlink(missing_ok=True)


def delete_namespace(netns: str) -> None:
    pids = run(["ip", "netns", "pids", netns], timeout=TIMEOUT, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    run(["ip", "netns", "del", netns], timeout=TIMEOUT, check=False)


def cleanup_abandoned() -> list[str]:
    """Delete the namespaces of benchmark runs whose process is gone (killed with SIGKILL, machine crash).

    Only runs that left an owner file are considered, so namespaces of anyone else are never touched.
    """
    removed: list[str] = []
    if not OWNERS_DIR.is_dir():
        return removed
    for owner in sorted(OWNERS_DIR.glob(f"{PREFIX}*.pid")):
        if _bench_alive(owner.read_text().strip()):
            continue
        if NETNS_DIR.is_dir():
            for entry in sorted(NETNS_DIR.iterdir()):
                if entry.name.startswith(f"{owner.stem}-"):
                    delete_namespace(entry.name)
                    removed.append(entry.name)
        owner.unlink(missing_ok=True)
    return removed


def _bench_alive(pid: str) -> bool:
    """Is this pid a live (not zombie) benchmark process? A reused pid running something else is not."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        cmdline = Path(f"/proc/{int(pid)}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and b"bench" in cmdline
