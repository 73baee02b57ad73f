"""Which upstream registry and repository a request is for.

In order: containerd's `?ns=<registry>`; a registry host as the first path component
(`/v2/<registry-host>/<repo>/...`) for clients that send no `ns`; otherwise the default registry.
containerd with `override_path = true` sends both (`/v2/<registry>/<repo>/...?ns=<registry>`): a first path
component equal to `ns` is the registry, not part of the repository.
Registries that are neither configured nor admitted by an allow pattern are refused, so the proxy never
relays to an arbitrary host. The paths' shapes and their parameters' grammar come from the route table
(`core.registry_api`).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from core import errors, registry_api
from core.digest import Digest, InvalidDigest
from core.errors import RegistryError
from core.names import looks_like_registry_host
from upstream.registry import UpstreamRegistry

from .config import DOCKER_HUB_ALIASES, ProxyConfig


@dataclass(frozen=True, slots=True)
class Target:
    registry: UpstreamRegistry
    repository: str
    # Which registry API route the path is (`registry_api.MANIFEST`, `registry_api.BLOB`).
    route: registry_api.Route
    # The path's tag or digest (`{reference}` or `{digest}`).
    reference: str

    @property
    def digest(self) -> Digest | None:
        try:
            return Digest.parse(self.reference)
        except InvalidDigest:
            return None


def parse_target(path: str, ns: str | None, config: ProxyConfig) -> Target:
    """The upstream target of a registry API path about a repository; raises an OCI error if invalid.

    Name and reference are checked before the registry is looked at: nothing malformed reaches any upstream.
    """
    found = registry_api.match(path)
    # Routes about no repository (the ping) have routes of their own in the app.
    if found is None or "name" not in found[1]:
        raise RegistryError(errors.NAME_UNKNOWN, message="unknown registry API path", status=404)
    route, values = found
    name = values["name"]
    registry_name = ns or None
    first, slash, rest = name.partition("/")
    if slash and (
        first.lower() == registry_name.lower() if registry_name is not None else looks_like_registry_host(first)
    ):
        registry_name, name = first, rest
    route.check({**values, "name": name})
    registry = resolve_registry(registry_name or config.default_registry, config)
    if registry.library_prefix and "/" not in name:
        name = f"library/{name}"
    return Target(registry, name, route, values.get("reference") or values.get("digest", ""))


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
