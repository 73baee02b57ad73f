"""Peer settings, each with its default in one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(slots=True)
class PeerConfig:
    data_dir: Path = Path("/var/lib/damselfly")
    # Supernode base URL; empty means no swarm: every blob comes from the upstream (single host).
    supernode_url: str = ""
    upload_host: str = "0.0.0.0"
    upload_port: int = 65002
    # Host other peers dial; empty means "as the supernode sees us".
    advertise_host: str = ""
    join_token: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    # Pieces fetched from parents at once, and per parent.
    max_inflight: int = 8
    max_inflight_per_parent: int = 3
    # Pieces fetched from parents at once across all of the host's downloads: each is held in memory until it
    # is verified and written, so this bounds the memory of a host pulling many blobs at once (16 x 4 MiB).
    max_inflight_host: int = 16
    # How long a parent may hold a request for a piece it does not have yet.
    piece_wait: float = 15.0
    # Without any progress for this long, the swarm is given up and the upstream serves the rest.
    stall_timeout: float = 20.0
    # Network timeouts: connecting, and the longest silence while reading.
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    # Start-up: how long to keep trying to reach the supernode before giving up.
    register_timeout: float = 15.0
    # Per-host rate limits in bytes per second, 0 for none: serving pieces to peers, fetching pieces from
    # peers, and fetching from the upstream registry, so the swarm never starves the host's own traffic.
    upload_rate: float = 0.0
    download_rate: float = 0.0
    source_rate: float = 0.0
    # Disk quota of the store in bytes, 0 for none (peer/quota.py). Starting a blob that would take the store past
    # `disk_high_watermark` (a fraction of the quota) evicts least-recently-used blobs nobody is reading until it
    # is back at `disk_low_watermark`; a blob that still does not fit is refused with HTTP 507.
    disk_quota: int = 0
    disk_high_watermark: float = 0.9
    disk_low_watermark: float = 0.8
    # Upstream retries on 429, 5xx and broken bodies.
    upstream_attempts: int = 5
    upstream_backoff: float = 0.5
