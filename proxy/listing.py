"""Tag lists and the catalog, passed through to the upstream with their pagination, and cached for a few seconds.

A tag list follows the manifests' access rules: the client's own credentials (or the registry's configured ones)
go to the upstream, and its 401/403/404 come back as it said them. The catalog is something many registries do
not offer (Docker Hub, most clouds): their refusal becomes a plain `UNSUPPORTED`, never an unknown path.

The cache is keyed by registry, route, repository, query and a hash of the client's credentials, so one client's
answer never reaches a client with other credentials; an upstream that forbids caching (`no-store`, `no-cache`,
a `max-age` shorter than ours) is not cached at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx
from cachetools import TTLCache
from starlette.requests import Request
from starlette.responses import Response

from core import errors, registry_api
from core.errors import RegistryError
from upstream.clients import Upstreams

from .access import credential_key, refusal
from .relay import own_link, pagination, relay_get, respond
from .routing import Target

# Far above any real tag list page; a bound, so an upstream cannot make the mirror hold an endless body.
MAX_LISTING_BYTES = 16 * 1024 * 1024
# The upstream's statuses that mean "no catalog here" (or not for anyone the mirror can speak for).
CATALOG_REFUSED = frozenset({401, 403, 404})
_MAX_AGE = re.compile(r"max-age\s*=\s*([0-9]+)")


@dataclass(frozen=True, slots=True)
class Listing:
    body: bytes
    content_type: str
    # The upstream's `Link`, as it sent it: rewritten per request, since the path asked for may differ.
    link: str | None


class Listings:
    def __init__(self, upstreams: Upstreams, ttl: float, maxsize: int = 10_000) -> None:
        self.upstreams = upstreams
        self.ttl = ttl
        self._cache: TTLCache[tuple[str, ...], Listing] = TTLCache(maxsize=maxsize, ttl=ttl)

    async def tags(self, request: Request, target: Target) -> Response:
        query = pagination(request)
        url = registry_api.TAGS.url(query, name=target.repository)
        return self._answer(request, await self._listing(request, target, url, errors.NAME_UNKNOWN))

    async def catalog(self, request: Request, target: Target) -> Response:
        url = registry_api.CATALOG.url(pagination(request))
        return self._answer(request, await self._listing(request, target, url, None))

    async def _listing(
        self, request: Request, target: Target, url: str, unknown: errors.ErrorCode | None
    ) -> Listing:
        """The upstream's 200 answer for `url`, from the cache when fresh; its refusal raised otherwise.

        `unknown` is the code of a bare 404; None marks the catalog, which any refusal turns to `UNSUPPORTED`."""
        auth = request.headers.get("authorization")
        key = (target.registry.name, target.route.name, target.repository, url, credential_key(auth))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        limit = MAX_LISTING_BYTES
        answer = await relay_get(self.upstreams, target.registry, url, auth, limit, [("Accept", "application/json")])
        if answer.status != 200:
            if unknown is None and answer.status in CATALOG_REFUSED:
                raise RegistryError(
                    errors.UNSUPPORTED,
                    message="the upstream registry does not offer its catalog",
                    detail={"registry": target.registry.name, "upstream_status": answer.status},
                )
            raise refusal(answer.status, answer.headers, answer.body, unknown or errors.NAME_UNKNOWN)
        content_type = answer.headers.get("content-type", "application/json")
        listing = Listing(answer.body, content_type, answer.headers.get("link"))
        if self._may_cache(answer.headers):
            self._cache[key] = listing
        return listing

    def _may_cache(self, headers: httpx.Headers) -> bool:
        control = headers.get("cache-control", "").lower()
        if "no-store" in control or "no-cache" in control:
            return False
        max_age = _MAX_AGE.search(control)
        return max_age is None or int(max_age.group(1)) >= self.ttl

    @staticmethod
    def _answer(request: Request, listing: Listing) -> Response:
        headers = {"content-type": listing.content_type}
        link = own_link(listing.link, request)
        if link is not None:
            headers["link"] = link
        return respond(request, listing.body, headers)
