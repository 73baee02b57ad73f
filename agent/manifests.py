"""An image's manifests, fetched from the upstream as the proxy fetches them (the registry client, its credentials
and retries), checked against the digest asked for, and read for the blobs an image is made of."""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass
from typing import Any

from core import registry_api
from core.digest import Digest, InvalidDigest
from upstream.client import RegistryClient

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEXES = frozenset({OCI_INDEX, DOCKER_LIST})
ACCEPT = (OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
# The largest manifest accepted (the proxy's default, the CNCF registry's own limit).
MAX_MANIFEST = 4 * 1024 * 1024


class ManifestError(Exception):
    """The manifest cannot be had or used: a one-line reason."""


@dataclass(frozen=True, slots=True)
class Descriptor:
    digest: Digest
    size: int
    platform: str = ""


@dataclass(frozen=True, slots=True)
class Manifest:
    digest: Digest
    media_type: str
    # An image manifest's config and layers, or an index's manifests (with their platforms).
    descriptors: tuple[Descriptor, ...]

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEXES


async def fetch_manifest(client: RegistryClient, repository: str, reference: str, auth: str | None) -> Manifest:
    path = registry_api.MANIFEST.path(name=repository, reference=reference)
    response = await client.send(
        "GET", path, client_auth=auth, headers=[("Accept", media) for media in ACCEPT], stream=True
    )
    try:
        body = bytearray()
        if response.status_code == 200:
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_MANIFEST:
                    raise ManifestError(f"the manifest of {repository}:{reference} is larger than 4 MiB")
    finally:
        await response.aclose()
    if response.status_code in (401, 403):
        raise ManifestError(f"{client.registry.name} refused the manifest of {repository} ({response.status_code})")
    if response.status_code == 404:
        raise ManifestError(f"{client.registry.name} has no manifest {repository}:{reference}")
    if response.status_code != 200:
        raise ManifestError(f"{client.registry.name} answered {response.status_code} for the manifest of {repository}")
    return _parsed(bytes(body), response.headers.get("content-type", ""), reference, repository)


def _parsed(body: bytes, content_type: str, reference: str, repository: str) -> Manifest:
    digest = Digest("sha256", hashlib.sha256(body).hexdigest())
    if ":" in reference:
        asked = Digest.parse(reference)
        if not asked.matches(body):
            raise ManifestError(f"the upstream's manifest of {repository} does not match {asked}")
        digest = asked
    try:
        manifest: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"the manifest of {repository}:{reference} is not JSON") from exc
    if not isinstance(manifest, dict):
        raise ManifestError(f"the manifest of {repository}:{reference} is not a JSON object")
    media_type = manifest.get("mediaType") or content_type.split(";")[0].strip()
    if media_type in INDEXES:
        entries = manifest.get("manifests")
    elif media_type in IMAGE_MANIFESTS:
        entries = [manifest.get("config"), *(manifest.get("layers") or [])]
    else:
        raise ManifestError(f"the manifest of {repository}:{reference} is a {media_type[:100]!r}, not an image")
    if not isinstance(entries, list):
        raise ManifestError(f"the manifest of {repository}:{reference} lists no descriptors")
    return Manifest(digest, media_type, tuple(_descriptor(entry, repository) for entry in entries))


def _descriptor(entry: Any, repository: str) -> Descriptor:
    if not isinstance(entry, dict):
        raise ManifestError(f"a descriptor in the manifest of {repository} is not an object")
    size = entry.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"a descriptor in the manifest of {repository} has no valid size")
    try:
        digest = Digest.parse(str(entry.get("digest")))
    except InvalidDigest as exc:
        raise ManifestError(f"a descriptor in the manifest of {repository}: {exc}") from exc
    return Descriptor(digest, size, _platform(entry.get("platform")))


def _platform(platform: Any) -> str:
    if not isinstance(platform, dict):
        return ""
    parts = [str(platform.get("os", "")), str(platform.get("architecture", ""))]
    if platform.get("variant"):
        parts.append(str(platform["variant"]))
    return "/".join(parts)


def wanted(index: Manifest, platforms: tuple[str, ...]) -> list[Descriptor]:
    """The index's manifests for `platforms` (all without); a platform asked for that is not there is an error."""
    if not platforms:
        return list(index.descriptors)
    chosen = [d for d in index.descriptors if d.platform in platforms or _without_variant(d.platform) in platforms]
    missing = [p for p in platforms if not any(p in (d.platform, _without_variant(d.platform)) for d in chosen)]
    if missing:
        raise ManifestError(f"the image has no platform {', '.join(missing)[:200]}")
    return chosen


# `uname -m` as OCI names the architecture.
_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
                  "s390x": "s390x", "riscv64": "riscv64"}


def host_platform() -> str:
    """This host's platform as an index names it (`linux/amd64`): what its container runtime pulls."""
    machine = platform.machine()
    return f"{platform.system().lower()}/{_ARCHITECTURES.get(machine, machine)}"


def _without_variant(platform: str) -> str:
    return "/".join(platform.split("/")[:2])
