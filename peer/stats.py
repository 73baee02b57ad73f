"""Counters of what the peer did, exported as Prometheus metrics and used by tests and the benchmark."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(slots=True)
class PeerStats:
    bytes_from_upstream: int = 0
    bytes_from_peers: int = 0
    bytes_served_local: int = 0
    bytes_served_zerocopy: int = 0  # the part of bytes_served_local sent from a complete blob with sendfile
    fallbacks: int = 0
    corrupt_pieces: int = 0
    verify_failures: int = 0
    upstream_retries: int = 0
    # Downloads started over because the swarm's digests were found wrong (peer/download.py).
    swarm_restarts: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
