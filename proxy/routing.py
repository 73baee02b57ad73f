"""Which upstream registry and repository a request is for.

In order: containerd's `?ns=<registry>`; a registry host as the first path component
(`/v2/<registry-host>/<repo>/...`) for clients that send no `ns`; otherwise the default registry.
containerd with `override_path = true` sends both (`/v2/<registry>/<repo>/...?ns=<registry>`): a first path
component equal to `ns` is the registry, not part of the repository.
Registries that are neither configured nor admitted by an allow pattern are refused, so the proxy never
relays to an arbitrary host.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from core import errors
from core.digest import Digest, InvalidDigest
from core.errors import RegistryError
from core.names import is_repository, is_tag, looks_like_registry_host
from peer.upstream import UpstreamRegistry

from .config import DOCKER_HUB_ALIASES, ProxyConfig

_PATH = re.compile(r"^/v2/(?P<name>.+)/(?P<kind>manifests|blobs)/(?P<reference>[^/]+)$")


@dataclass(frozen=True, slots=True)
class Target:
    registry: UpstreamRegistry
    repository: str
    kind: str
    reference: str

    @property
    def digest(self) -> Digest | None:
        try:
            return Digest.parse(self.reference)
        except InvalidDigest:
            return None


def parse_target(path: str, ns: str | None, config: ProxyConfig) -> Target:
    """The upstream target of a `/v2/<name>/(manifests|blobs)/<reference>` path; raises an OCI error if invalid.

    Name and reference are checked before the registry is looked at: nothing malformed reaches any upstream.
    """
    match = _PATH.match(path)
    if match is None:
        raise RegistryError(errors.NAME_UNKNOWN, message="unknown registry API path", status=404)
    name, kind, reference = match.group("name", "kind", "reference")
    registry_name = ns or None
    first, slash, rest = name.partition("/")
    if slash and (
        first.lower() == registry_name.lower() if registry_name is not None else looks_like_registry_host(first)
    ):
        registry_name, name = first, rest
    _check_reference(kind, reference)
    if not is_repository(name):
        raise RegistryError(errors.NAME_INVALID, detail={"name": name[:300]})
    registry = resolve_registry(registry_name or config.default_registry, config)
    if registry.library_prefix and "/" not in name:
        name = f"library/{name}"
    return Target(registry, name, kind, reference)


def _check_reference(kind: str, reference: str) -> None:
    if kind == "blobs":
        try:
            Digest.parse(reference)
        except InvalidDigest:
            raise RegistryError(
                errors.DIGEST_INVALID, message="invalid digest", detail={"digest": reference[:300]}
            ) from None
    elif not is_tag(reference):
        try:
            Digest.parse(reference)
        except InvalidDigest:
            raise RegistryError(
                errors.MANIFEST_INVALID, message="invalid tag or digest", detail={"reference": reference[:300]}
            ) from None


def resolve_registry(name: str, config: ProxyConfig) -> UpstreamRegistry:
    name = name.strip().lower()
    if name in DOCKER_HUB_ALIASES:
        for alias in DOCKER_HUB_ALIASES:
            if alias in config.registries:
                return config.registries[alias]
    if name in config.registries:
        return config.registries[name]
    if not looks_like_registry_host(name):
        raise RegistryError(errors.REGISTRY_NOT_ALLOWED, detail={"registry": name[:300]})
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in config.allow):
        return UpstreamRegistry(name=name, url=f"https://{name}")
    raise RegistryError(errors.REGISTRY_NOT_ALLOWED, detail={"registry": name[:300]})
