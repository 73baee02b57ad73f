"""Prefetch: when a client gets an image manifest, start its blobs' downloads at once.

Clients fetch blobs one after another (skopeo) or a few at a time (containerd, podman), and each blob starts
with an access check and a swarm join, and ends waiting for its whole-blob digest: gaps in which the upstream's
link sits idle. Starting every blob of the manifest as soon as the manifest goes out keeps the link busy, and
in a pull storm every host joins every swarm at once. Each blob is checked with the upstream with the same
client's credentials first, so nothing is fetched that this client could not have pulled; nothing is served
by prefetching, it only warms the store.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from core import registry_api
from core.digest import Digest, InvalidDigest
from core.errors import RegistryError
from peer.service import PeerService
from upstream.blob import BlobSource
from upstream.clients import Upstreams

from .access import AccessChecker
from .routing import Target

log = logging.getLogger(__name__)

IMAGE_MANIFESTS = frozenset(
    {"application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"}
)
# A manifest with more layers than this is unusual; prefetching is a help, not a duty, so bound the work.
MAX_BLOBS = 128


def blob_digests(body: bytes, content_type: str) -> list[Digest]:
    """The config and layer digests of an image manifest; [] for anything else (indexes, lists, junk)."""
    try:
        manifest: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return []
    if not isinstance(manifest, dict):
        return []
    media_type = manifest.get("mediaType") or content_type.split(";")[0].strip()
    if media_type not in IMAGE_MANIFESTS:
        return []
    descriptors = [manifest.get("config"), *(manifest.get("layers") or [])][:MAX_BLOBS]
    found: list[Digest] = []
    for descriptor in descriptors:
        if not isinstance(descriptor, dict) or not isinstance(descriptor.get("digest"), str):
            continue
        try:
            digest = Digest.parse(descriptor["digest"])
        except InvalidDigest:
            continue
        if digest not in found:
            found.append(digest)
    return found


async def prefetch(
    digests: list[Digest],
    target: Target,
    client_auth: str | None,
    peer: PeerService,
    access: AccessChecker,
    upstreams: Upstreams,
) -> None:
    """Start downloads of the blobs not yet here; never raises (a failed prefetch is only a missed help)."""
    for digest in digests:
        if peer.complete_size(digest) is not None:
            continue
        blob = Target(target.registry, target.repository, registry_api.BLOB, str(digest))
        try:
            size = await access.blob_size(blob, client_auth)
            source = BlobSource(upstreams.client(target.registry), target.repository, str(digest), client_auth)
            await peer.prefetch(digest, size, source)
        except (RegistryError, OSError) as exc:
            log.info("prefetch of %s skipped: %s", digest, exc)
