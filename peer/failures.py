"""How a download can fail, as the proxy and the swarm loop tell the cases apart."""

from __future__ import annotations


class DownloadFailed(Exception):
    """The blob could not be had from the swarm nor from the upstream, or it did not match its digest."""


class BlobMismatch(DownloadFailed):
    """The assembled blob, or an upstream piece, is not what the digests say: nothing of it lands."""


class UpstreamFailed(DownloadFailed):
    """The upstream refused the blob or kept breaking off, after every attempt allowed."""


class SwarmStalled(Exception):
    """The swarm made no progress for too long; the upstream takes over."""
