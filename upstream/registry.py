"""One configured upstream registry: where it is, the credentials and TLS settings to reach it with."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(slots=True)
class UpstreamRegistry:
    # The name clients use for it (`registry.example.test`, `docker.io`).
    name: str
    # Where its API is (`https://registry.example.test`, no trailing slash needed).
    url: str
    # Credentials the mirror uses when a client sends none of its own; empty: anonymous.
    username: str = ""
    password: str = ""
    # A CA file trusted on top of the system's CAs, for a registry with a private CA.
    ca_file: str = ""
    # Skip certificate verification (a test registry with a self-signed certificate).
    insecure: bool = False
    # Docker Hub's one-word names (`alpine`) live under `library/`.
    library_prefix: bool = False
    # Private networks its redirects may lead to (object storage inside the data centre): without them a redirect
    # is followed only to the registry's own origin or to public addresses (`upstream.redirects`).
    redirect_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @property
    def has_credentials(self) -> bool:
        return bool(self.username)
