"""Manifests pass through to the upstream: every Accept line kept, type and digest headers preserved."""

from __future__ import annotations

import hashlib

import httpx
from starlette.requests import Request
from starlette.responses import Response

from core import errors
from core.errors import RegistryError
from peer.upstream import UpstreamError

from .access import refusal
from .config import ProxyConfig
from .routing import Target
from .upstreams import Upstreams

# Response headers of the upstream that a client relies on.
KEPT_HEADERS = ("content-type", "docker-content-digest", "etag", "last-modified")
# Request headers worth forwarding besides Accept (conditional requests).
FORWARDED_HEADERS = ("if-none-match", "if-modified-since")


async def serve_manifest(request: Request, target: Target, upstreams: Upstreams, config: ProxyConfig) -> Response:
    # Each Accept line travels as its own header: merged, registries answer 404 for OCI manifests.
    headers = [("Accept", value) for value in request.headers.getlist("accept")]
    headers += [(name, request.headers[name]) for name in FORWARDED_HEADERS if name in request.headers]
    client = upstreams.client(target.registry)
    path = f"/v2/{target.repository}/manifests/{target.reference}"
    try:
        response = await client.send(
            request.method, path, client_auth=request.headers.get("authorization"), headers=headers, stream=True
        )
    except UpstreamError as exc:
        raise RegistryError(errors.UPSTREAM_FAILED, detail=str(exc)[:300]) from exc
    try:
        body = b""
        if request.method == "GET":
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > config.max_manifest_bytes:
                    raise RegistryError(errors.MANIFEST_INVALID, detail="manifest larger than the mirror accepts")
    finally:
        await response.aclose()
    if response.status_code == 304:
        return Response(status_code=304, headers=_kept(response.headers))
    if response.status_code != 200:
        raise refusal(response.status_code, response.headers, body)
    out = _kept(response.headers)
    digest = target.digest
    if digest is not None and request.method == "GET":
        if not digest.matches(body):
            raise RegistryError(errors.DIGEST_INVALID, detail="the upstream's manifest does not match its digest")
        out["docker-content-digest"] = str(digest)
    elif request.method == "GET" and "docker-content-digest" not in out:
        out["docker-content-digest"] = "sha256:" + hashlib.sha256(body).hexdigest()
    if request.method == "HEAD":
        length = response.headers.get("content-length")
        if length is not None:
            out["content-length"] = length
        return Response(status_code=200, headers=out)
    return Response(body, status_code=200, headers=out)


def _kept(headers: httpx.Headers) -> dict[str, str]:
    return {name: headers[name] for name in KEPT_HEADERS if name in headers}
