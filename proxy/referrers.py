"""The OCI 1.1 referrers API (`GET /v2/<name>/referrers/<digest>`), passed through, or answered from the tag schema.

An upstream with the API answers an image index (filtered by `artifactType` if it says so in
`OCI-Filters-Applied`): passed on as it is. One without it (`docker-registry` 2.8 answers `404 page not found`)
is asked for the fallback the spec describes: the index tagged `<alg>-<hex>`, which pushers that know no referrers
API keep up to date. That index is filtered by `artifactType` here (and says so); no such tag is an empty index.
Same access rules as manifests: the client's credentials go upstream, a refusal comes back as it was said.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from core import errors, registry_api
from core.digest import Digest
from upstream.clients import Upstreams

from .access import refusal
from .config import ProxyConfig
from .relay import own_link, relay_get, respond
from .routing import Target

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
FILTERS_APPLIED = "oci-filters-applied"


def fallback_tag(digest: Digest) -> str:
    """The tag schema's name for the referrers of `digest`: `<alg>-<hex>`, truncated to 32 and 64 characters."""
    return f"{digest.algorithm[:32]}-{digest.hex[:64]}"


async def serve_referrers(request: Request, target: Target, upstreams: Upstreams, config: ProxyConfig) -> Response:
    digest = target.digest
    assert digest is not None  # the route's `{digest}` convertor admitted it
    artifact_type = request.query_params.get("artifactType") or None
    query = [("artifactType", artifact_type)] if artifact_type else []
    auth = request.headers.get("authorization")
    url = registry_api.REFERRERS.url(query, name=target.repository, digest=str(digest))
    limit = config.max_manifest_bytes
    accept = [("Accept", OCI_INDEX)]
    answer = await relay_get(upstreams, target.registry, url, auth, limit, accept)
    if answer.status == 200:
        headers = {"content-type": answer.headers.get("content-type", OCI_INDEX)}
        if FILTERS_APPLIED in answer.headers:
            headers[FILTERS_APPLIED] = answer.headers[FILTERS_APPLIED]
        link = own_link(answer.headers.get("link"), request)
        if link is not None:
            headers["link"] = link
        return respond(request, answer.body, headers)
    if answer.status != 404 or _index_of(answer.body) is not None:
        raise refusal(answer.status, answer.headers, answer.body, errors.MANIFEST_UNKNOWN)
    # No referrers API upstream: the tag schema.
    tag_url = registry_api.MANIFEST.path(name=target.repository, reference=fallback_tag(digest))
    tagged = await relay_get(upstreams, target.registry, tag_url, auth, limit, accept)
    if tagged.status == 404 and _error_code(tagged.body) == errors.NAME_UNKNOWN.code:
        raise refusal(tagged.status, tagged.headers, tagged.body, errors.NAME_UNKNOWN)
    if tagged.status not in (200, 404):
        raise refusal(tagged.status, tagged.headers, tagged.body, errors.MANIFEST_UNKNOWN)
    # The tagged index is discovery, not content: each referrer it lists is fetched (and verified) by digest.
    # Anything else under that tag (absent, not an index) lists no referrers.
    index = _index_of(tagged.body) if tagged.status == 200 else None
    manifests = index["manifests"] if index is not None else []
    headers = {"content-type": OCI_INDEX}
    if artifact_type is not None:
        manifests = [m for m in manifests if isinstance(m, dict) and m.get("artifactType") == artifact_type]
        headers[FILTERS_APPLIED] = "artifactType"
    if index is not None and artifact_type is None:
        return respond(request, tagged.body, headers)  # as pushed, byte for byte
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).encode()
    return respond(request, body, headers)


def _index_of(body: bytes) -> dict[str, Any] | None:
    """The body as an image index (an object with a `manifests` list), or None."""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(parsed, dict) and isinstance(parsed.get("manifests"), list):
        return parsed
    return None


def _error_code(body: bytes) -> str | None:
    try:
        parsed = json.loads(body)
        code = parsed["errors"][0]["code"]
    except (ValueError, UnicodeDecodeError, KeyError, IndexError, TypeError):
        return None
    return code if isinstance(code, str) else None
