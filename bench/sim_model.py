"""The simulated cluster: its settings, swarms (blobs) and downloads (one host pulling one blob)."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from core.pieces import PieceLayout, choose_piece_size


@dataclass(frozen=True, slots=True)
class SimSettings:
    hosts: int = 10_000
    swarms: int = 50
    # Blobs per image; every host pulls one image, so each swarm has hosts * layers / swarms members.
    layers: int = 5
    # Mean blob size; sizes are drawn between 0.2 and 1.8 times it.
    blob_mb: float = 60.0
    # Hosts start pulling spread over this many seconds (a rolling deploy of every image at once).
    window: float = 30.0
    # Share of hosts that die while pulling (their swarms must route around them).
    churn: float = 0.01
    # Pull an image's blobs one after another (skopeo) instead of all at once (containerd, podman).
    sequential: bool = False
    # Least time between two piece-count reports of a child (peer/reporter.py batches them for 0.25 s; a source's
    # digests and a last `done` go out at once whatever this is).
    report_interval: float = 0.25
    seed: int = 1
    host_mbit: int = 1000
    # The upstream registry's link, shared by every source.
    upstream_mbit: int = 1000
    # Simulated time limit.
    max_seconds: float = 900.0


@dataclass(slots=True)
class Swarm:
    digest: str
    size: int
    piece_size: int
    count: int
    members: dict[str, Download] = field(default_factory=dict)

    @property
    def complete(self) -> int:
        return (1 << self.count) - 1

    def piece_digest(self, index: int) -> str:
        return hashlib.sha256(f"{self.digest}/{index}".encode()).hexdigest()


@dataclass(slots=True)
class Download:
    host: int
    peer_id: str
    swarm: int
    start: float
    # "" before joining, then "source", "child", "fallback" (gave up on the swarm) or "done".
    role: str = ""
    have: int = 0
    reported: int = 0
    parents: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    seen_version: int = -1
    # Piece digests known from the start of the blob, as the peer tells the supernode when it syncs.
    digests_known: int = 0
    last_view: float = 0.0
    last_report: float = float("-inf")
    last_progress: float = 0.0
    # Fractional pieces earned by the link but not yet taken.
    credit: float = 0.0
    # The host's next blob, started when this one is done (sequential pulls).
    follow: Download | None = None


def peer_id(host: int) -> str:
    return f"host-{host:05d}-0123abcd"


def build_plan(s: SimSettings, rng: random.Random) -> tuple[list[Swarm], list[Download], list[float]]:
    """Swarms, every host's downloads, and each host's time of death (infinity for most)."""
    swarms = []
    for index in range(s.swarms):
        size = int(s.blob_mb * 1e6 * rng.uniform(0.2, 1.8))
        layout = PieceLayout(size, choose_piece_size(size))
        digest = "sha256:" + hashlib.sha256(f"blob-{s.seed}-{index}".encode()).hexdigest()
        swarms.append(Swarm(digest, size, layout.piece_size, layout.count))
    images = max(1, s.swarms // s.layers)
    downloads = []
    for host in range(s.hosts):
        start = rng.uniform(0.0, s.window)
        image = host % images
        previous: Download | None = None
        for layer in range(s.layers):
            index = image * s.layers + layer
            if index < len(swarms):
                download = Download(host, peer_id(host), index, start)
                if s.sequential and previous is not None:
                    previous.follow = download
                    download.start = float("inf")
                downloads.append(download)
                previous = download
    death = [float("inf")] * s.hosts
    for host in rng.sample(range(s.hosts), int(s.hosts * s.churn)):
        death[host] = rng.uniform(s.window / 2, s.window * 1.5)
    return swarms, downloads, death
