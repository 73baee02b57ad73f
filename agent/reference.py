"""An image reference as a job names it (`registry.example.com/team/app:1.4`, `team/app@sha256:...`, `app`), resolved
against this host's configured registries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.names import looks_like_registry_host
from upstream.registry import UpstreamRegistry

# Names clients use for Docker Hub (as proxy/config.py has them).
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


class BadReference(Exception):
    """The reference cannot be resolved on this host: a one-line reason."""


@dataclass(frozen=True, slots=True)
class ImageReference:
    registry: UpstreamRegistry
    repository: str
    # A tag or a digest (`sha256:...`).
    reference: str

    @property
    def by_digest(self) -> bool:
        return ":" in self.reference


def resolve_reference(text: str, registries: Mapping[str, UpstreamRegistry], default: str) -> ImageReference:
    name, at, digest = text.strip().partition("@")
    tag = ""
    head, colon, tail = name.rpartition(":")
    # A colon after the last slash is a tag's (with a digest too, the digest is what is fetched); one before it is
    # a registry host's port.
    if colon and "/" not in tail:
        name, tag = head, tail
    registry_name = default
    first, slash, rest = name.partition("/")
    if slash and looks_like_registry_host(first):
        registry_name, name = first, rest
    if not name:
        raise BadReference(f"no repository in the image reference {text[:200]!r}")
    registry = _configured(registry_name, registries)
    if registry.library_prefix and "/" not in name:
        name = f"library/{name}"
    return ImageReference(registry, name, digest if at else (tag or "latest"))


def _configured(name: str, registries: Mapping[str, UpstreamRegistry]) -> UpstreamRegistry:
    name = name.strip().lower()
    candidates = DOCKER_HUB_ALIASES if name in DOCKER_HUB_ALIASES else {name}
    for candidate in candidates:
        if candidate in registries:
            return registries[candidate]
    raise BadReference(f"registry {name[:200]} is not configured on this host")
