"""`damselfly peer` (or `up`) whose upload server flips a byte in every piece it serves; its own store stays right.

A test entry point, so no flag or setting of the real command can turn the fault on:

    python -m tests.support.faulty_peer peer --supernode ... (the flags of `damselfly peer`)
"""

from __future__ import annotations

import sys

from damselfly import cli
from peer.config import PeerConfig
from peer.service import PeerService


def corrupt_peer(config: PeerConfig) -> PeerService:
    return PeerService(config, fault_corrupt=True)


if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:], peer_factory=corrupt_peer))
