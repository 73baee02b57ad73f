"""How a download can fail, as the proxy and the swarm loop tell the cases apart."""

from __future__ import annotations


class DownloadFailed(Exception):
    """The blob could not be had from the swarm nor from the upstream, or it did not match its digest."""


class BlobMismatch(DownloadFailed):
    """The assembled blob, or an upstream piece, is not what the digests say: nothing of it lands."""


class SwarmDigestsWrong(BlobMismatch):
    """An upstream piece differs from the digest the swarm published for it: the swarm's digests are wrong (its
    source lied), so the pieces verified against them are void (peer/download.py starts over)."""


class UpstreamFailed(DownloadFailed):
    """The upstream refused the blob or kept breaking off, after every attempt allowed."""


class SwarmReset(Exception):
    """The supernode reset the swarm (a new epoch in the view): another member found its feeder bad, and every
    piece verified against the old digests is void."""


class SwarmStalled(Exception):
    """The swarm made no progress for too long; the upstream takes over."""
