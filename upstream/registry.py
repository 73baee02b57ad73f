"""One configured upstream registry: where it is, the credentials and TLS settings to reach it with."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class UpstreamRegistry:
    # The name clients use for it (`registry.example.test`, `docker.io`).
    name: str
    url: str
    username: str = ""
    password: str = ""
    ca_file: str = ""
    insecure: bool = False
    # Docker Hub's one-word names (`alpine`) live under `library/`.
    library_prefix: bool = False

    @property
    def has_credentials(self) -> bool:
        return bool(self.username)
