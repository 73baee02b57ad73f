"""One small GET relayed to the upstream (a tag list, the catalog, referrers): the client's credentials forwarded,
the body bounded, and the upstream's pagination `Link` turned into a link to the mirror's own path.

A `Link` names the upstream's path (`/v2/library/alpine/tags/list?last=b&n=2`), which a client of the mirror must
not follow: it would leave the mirror, or lose the registry it named by path prefix or `ns`. Only the upstream's
query (its `last`, `n` and whatever else it pages by) is kept, put after the path the client asked for.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import Response

from core import errors
from core.errors import RegistryError
from upstream.client import UpstreamError
from upstream.clients import Upstreams
from upstream.registry import UpstreamRegistry

# `<url>; rel="next"`: the one link a paginated registry answer carries.
_LINK = re.compile(r"^\s*<([^>]*)>\s*(;.*)?$")
_NEXT = '; rel="next"'
_COUNT = re.compile(r"^[0-9]{1,9}$")


@dataclass(frozen=True, slots=True)
class Relayed:
    """The upstream's answer, read whole."""

    status: int
    headers: httpx.Headers
    body: bytes


async def relay_get(
    upstreams: Upstreams,
    registry: UpstreamRegistry,
    url: str,
    client_auth: str | None,
    limit: int,
    headers: Sequence[tuple[str, str]] = (),
) -> Relayed:
    """GET `url` (a path and query built from the route table) at the upstream; a body over `limit` is refused."""
    client = upstreams.client(registry)
    try:
        response = await client.send("GET", url, client_auth=client_auth, headers=headers, stream=True)
    except UpstreamError as exc:
        raise RegistryError(errors.UPSTREAM_FAILED, detail=str(exc)[:300]) from exc
    try:
        too_large = RegistryError(errors.UPSTREAM_FAILED, detail="the upstream's answer is larger than we accept")
        body = await read_bounded(response, limit, too_large)
    except httpx.HTTPError as exc:
        raise RegistryError(errors.UPSTREAM_FAILED, detail=f"the upstream's answer broke off: {exc}"[:300]) from exc
    finally:
        await response.aclose()
    return Relayed(response.status_code, response.headers, body)


async def read_bounded(response: httpx.Response, limit: int, too_large: RegistryError) -> bytes:
    """The whole body of a small upstream answer (a manifest, a listing); `too_large` is raised past `limit` bytes,
    so an upstream cannot make the mirror hold an endless body."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def respond(request: Request, body: bytes, headers: dict[str, str]) -> Response:
    """A 200 with `body`, or for HEAD the same headers and its length without it."""
    if request.method == "HEAD":
        return Response(status_code=200, headers={**headers, "content-length": str(len(body))})
    return Response(body, status_code=200, headers=headers)


def pagination(request: Request) -> list[tuple[str, str]]:
    """The client's `n` and `last`, for the upstream; a count that is not a number is the client's error.

    An empty `n` is no `n`; `last` goes on as the client wrote it (percent-encoded by the URL builder)."""
    query: list[tuple[str, str]] = []
    count = request.query_params.get("n", "")
    if count:
        if _COUNT.match(count) is None:
            raise RegistryError(errors.PAGINATION_NUMBER_INVALID, detail={"n": count[:300]})
        query.append(("n", str(int(count))))
    last = request.query_params.get("last")
    if last is not None:
        query.append(("last", last))
    return query


def own_link(upstream_link: str | None, request: Request) -> str | None:
    """The upstream's `Link` pointed at the path the client asked for (with its `ns`, if it sent one); None when
    there is none, or it cannot be read (a link to the upstream must never reach the client)."""
    if not upstream_link:
        return None
    found = _LINK.match(upstream_link)
    if found is None:
        return None
    query = [(key, value) for key, value in parse_qsl(urlsplit(found.group(1)).query) if key != "ns"]
    ns = request.query_params.get("ns")
    if ns:
        query.append(("ns", ns))
    target = request.url.path + (f"?{urlencode(query)}" if query else "")
    return f"<{target}>{found.group(2) or _NEXT}"
