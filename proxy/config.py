"""Proxy settings: where it listens, which upstream registries it serves, and for how long access is trusted; those
an operator may set say their flag and TOML key (`[proxy]`; the registries are `[[registry]]` tables)."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.setting import Setting, setting
from upstream.origin import FileOrigin
from upstream.registry import UpstreamRegistry

DOCKER_HUB = UpstreamRegistry(name="docker.io", url="https://registry-1.docker.io", library_prefix=True)
# Names clients use for Docker Hub.
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    # Loopback: the mirror is for this host's clients, and it pulls with the registries' configured credentials
    # for whoever reaches it.
    listen_host: str = setting(
        "127.0.0.1",
        Setting("where the registry mirror listens", key="listen", flag="--listen", kind="host_port",
                metavar="HOST:PORT", port_field="listen_port"),
    )
    # The port half of `listen`.
    listen_port: int = 65001
    # `damselfly --upstream URL` adds a registry and makes it the default.
    default_registry: str = setting(
        "docker.io",
        Setting("the registry for requests that name none (no `ns`, no host as first path component)",
                key="default_registry"),
    )
    # The upstream registries by the name clients use, from the `[[registry]]` tables (damselfly/settings.py).
    registries: dict[str, UpstreamRegistry] = field(default_factory=lambda: {"docker.io": DOCKER_HUB})
    allow: list[str] = setting(
        [],
        Setting("host patterns (fnmatch) of registries reachable without being configured", key="allow",
                kind="patterns", shown_default="none"),
    )
    # How long a positive access decision is reused per (credential, registry, repository, digest).
    access_ttl: float = 30.0
    # How long a tag list, catalog or referrers answer is reused per (registry, path, query, credential): a few
    # seconds spare the upstream a client's burst of pages, and never hide a new tag for long.
    listing_ttl: float = 5.0
    prefetch: bool = setting(
        True,
        Setting("start an image's blobs as soon as its manifest is served (proxy/prefetch.py)", key="prefetch",
                flag="--no-prefetch", kind="disable"),
    )
    # Largest manifest accepted from an upstream (the CNCF registry's own limit).
    max_manifest_bytes: int = 4 * 1024 * 1024
    # The files endpoint (proxy/files.py, docs/files.md): loopback only, as it fetches with the origins' credentials.
    files_host: str = setting(
        "127.0.0.1",
        Setting("the loopback endpoint `damselfly get` fetches files through (docs/files.md)", key="files_listen",
                flag="--files-listen", kind="host_port", metavar="HOST:PORT", port_field="files_port"),
    )
    # The port half of `files_listen`; 0 turns the endpoint off.
    files_port: int = 65003
    # The web servers files may come from, from the `[[file_origin]]` tables (damselfly/settings.py): no other.
    file_origins: tuple[FileOrigin, ...] = ()
    # Both or neither: with them the mirror speaks https only.
    tls_cert: str = setting("", Setting("serve https with this certificate (PEM file)", key="tls_cert"))
    tls_key: str = setting("", Setting("the certificate's private key (PEM file)", key="tls_key"))
