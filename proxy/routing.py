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
    # "" for the routes about a whole registry (the catalog).
    repository: str
    # Which registry API route the path is (`registry_api.MANIFEST`, `registry_api.BLOB`, ...).
    route: registry_api.Route
    # The path's tag or digest (`{reference}` or `{digest}`); "" for routes without one.
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
    # The ping has a route of its own in the app.
    if found is None or found[0] is registry_api.BASE:
        raise RegistryError(errors.NAME_UNKNOWN, message="unknown registry API path", status=404)
    route, values = found
    if route not in registry_api.REPOSITORY_ROUTES:
        return _registry_target(route, values, ns, config)
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


def _registry_target(
    route: registry_api.Route, values: dict[str, str], ns: str | None, config: ProxyConfig
) -> Target:
    """A path about a whole registry: the one named in front (`/v2/<registry-host>/_catalog`), else `ns`, else the
    default. Upstream, it is the plain `CATALOG` route."""
    route.check(values)
    registry = resolve_registry(values.get("registry") or ns or config.default_registry, config)
    upstream_route = registry_api.CATALOG if route is registry_api.REGISTRY_CATALOG else route
    return Target(registry, "", upstream_route, "")


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
