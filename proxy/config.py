"""Proxy settings: where it listens, which upstream registries it serves, and for how long access is trusted."""

from __future__ import annotations

from dataclasses import dataclass, field

from peer.upstream import UpstreamRegistry

DOCKER_HUB = UpstreamRegistry(name="docker.io", url="https://registry-1.docker.io", library_prefix=True)
# Names clients use for Docker Hub.
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


@dataclass(slots=True)
class ProxyConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 65001
    # The registry for requests that name none (no `ns`, no host as first path component).
    default_registry: str = "docker.io"
    registries: dict[str, UpstreamRegistry] = field(default_factory=lambda: {"docker.io": DOCKER_HUB})
    # Host patterns (fnmatch) of registries that may be reached without being configured; empty: none.
    allow: list[str] = field(default_factory=list)
    # How long a positive access decision is reused per (credential, registry, repository, digest).
    access_ttl: float = 30.0
    # On an image manifest GET, start downloading its blobs at once (proxy/prefetch.py).
    prefetch: bool = True
    # Largest manifest accepted from an upstream (the CNCF registry's own limit).
    max_manifest_bytes: int = 4 * 1024 * 1024
    tls_cert: str = ""
    tls_key: str = ""
