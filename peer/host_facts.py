"""What the peer tells the supernode of its host in each heartbeat (supernode/api.py HostFacts), for the platform's
view of hosts: name, version, disk, recent rates, blobs held, and the traffic counters since the daemon started.

A heartbeat goes every couple of seconds, so it must stay cheap: the rates are two counters' differences, and the
store's usage (a directory scan) is taken again at most every `disk_every` seconds, in a thread.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from supernode.api import HostFacts

from .stats import PeerStats
from .store import BlobStore


def _version() -> str:
    try:
        return metadata.version("damselfly")
    except metadata.PackageNotFoundError:
        return ""


@dataclass(frozen=True, slots=True)
class Traffic:
    """Bytes moved since the daemon started, read from the counters where they are counted: the downloads'
    (peer/stats.py: from the upstream, from peers), the blob handles' (served to local clients) and the upload
    server's (served to other peers)."""

    fetched_upstream: int = 0
    fetched_peers: int = 0
    served_peers: int = 0
    served_clients: int = 0

    @classmethod
    def of(cls, stats: PeerStats, served_peers: int) -> Traffic:
        return cls(stats.bytes_from_upstream, stats.bytes_from_peers, served_peers, stats.bytes_served_local)

    @property
    def uploaded(self) -> int:
        return self.served_peers

    @property
    def downloaded(self) -> int:
        return self.fetched_upstream + self.fetched_peers


class HostFactsGatherer:
    def __init__(
        self,
        store: BlobStore,
        quota: int,
        traffic: Callable[[], Traffic],
        *,
        disk_every: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.quota = quota
        self.traffic = traffic
        self.disk_every = disk_every
        self.clock = clock
        self.hostname = socket.gethostname()[:255]
        self.version = _version()
        self._disk: tuple[int, int, int] = (0, 0, 0)
        self._disk_at = float("-inf")
        self._last: tuple[float, int, int] | None = None

    async def gather(self) -> HostFacts:
        now = self.clock()
        if now - self._disk_at >= self.disk_every:
            self._disk = await asyncio.to_thread(self._scan_disk)
            self._disk_at = now
        used, total, held = self._disk
        traffic = self.traffic()
        up, down = traffic.uploaded, traffic.downloaded
        upload_rate = download_rate = 0
        if self._last is not None and now > self._last[0]:
            elapsed = now - self._last[0]
            upload_rate = int(max(up - self._last[1], 0) / elapsed)
            download_rate = int(max(down - self._last[2], 0) / elapsed)
        self._last = (now, up, down)
        return HostFacts(
            hostname=self.hostname, version=self.version, disk_used=used, disk_total=total, disk_quota=self.quota,
            upload_rate=upload_rate, download_rate=download_rate, swarms=held,
            fetched_upstream=traffic.fetched_upstream, fetched_peers=traffic.fetched_peers,
            served_peers=traffic.served_peers, served_clients=traffic.served_clients,
        )

    def _scan_disk(self) -> tuple[int, int, int]:
        """(bytes the store holds, the filesystem's size, blobs held whole); zeros where the disk cannot tell."""
        try:
            files = self.store.quota.files()
            total = shutil.disk_usage(self.store.root).total if Path(self.store.root).is_dir() else 0
        except OSError:
            return (0, 0, 0)
        return (sum(f.size for f in files), total, sum(1 for f in files if f.complete))
