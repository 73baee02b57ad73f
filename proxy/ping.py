"""`GET /v2/`: the ping with which docker (and containers/image) decide how to authenticate.

docker and skopeo/podman read the auth challenge from the ping only: a client that saw 200 there never sends
credentials later, even when a manifest or blob request answers 401. So when the registry a ping is for
(`?ns=`, else the default) wants credentials and the mirror has none configured for it, the upstream's own
401 challenge is handed back, and the client runs its usual Basic or token flow against the upstream's realm.
A client that already sends `Authorization`, or a registry the mirror authenticates to itself, gets 200.
"""

from __future__ import annotations

from cachetools import TTLCache
from starlette.responses import Response

from core import errors
from core.errors import RegistryError
from upstream.client import UpstreamError
from upstream.clients import Upstreams

from .config import ProxyConfig
from .routing import resolve_registry

# Long enough that a client's burst of pings costs one upstream round trip, short enough to follow a change.
PING_CACHE_TTL = 10.0


class Ping:
    def __init__(self, upstreams: Upstreams, config: ProxyConfig, ttl: float = PING_CACHE_TTL) -> None:
        self.upstreams = upstreams
        self.config = config
        # registry name -> the upstream's challenge ("" when it wants none)
        self._challenges: TTLCache[str, str] = TTLCache(maxsize=1024, ttl=ttl)

    async def answer(self, ns: str | None, client_auth: str | None, headers: dict[str, str]) -> Response:
        ok = Response(b"{}", status_code=200, headers=headers, media_type="application/json")
        registry = resolve_registry(ns or self.config.default_registry, self.config)
        if client_auth or registry.has_credentials:
            return ok
        challenge = self._challenges.get(registry.name)
        if challenge is None:
            try:
                status, upstream_challenge = await self.upstreams.client(registry).ping()
                challenge = upstream_challenge if status == 401 else ""
            except UpstreamError:
                # An unreachable upstream is reported on the requests that need it, with a proper error; the
                # failure is remembered too, so pings during an outage do not each wait for a timeout.
                challenge = ""
            self._challenges[registry.name] = challenge
        if not challenge:
            return ok
        raise RegistryError(errors.UNAUTHORIZED, headers={"www-authenticate": challenge})
