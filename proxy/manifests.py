"""Manifests pass through to the upstream: every Accept line kept, type and digest headers preserved, digests
checked (a signed schema-1 manifest's digest is that of its payload without the signatures, as registries name
it), and the body held to the shape of the media type it claims (`manifest_shape`) before any of it is served."""

from __future__ import annotations

import hashlib
import logging

import httpx
from starlette.requests import Request
from starlette.responses import Response

from core import errors, registry_api
from core.digest import Digest, InvalidDigest
from core.errors import RegistryError
from core.schema1 import SIGNED_SCHEMA1, InvalidSignedManifest, signed_payload
from upstream.client import UpstreamError
from upstream.clients import Upstreams

from .access import refusal
from .config import ProxyConfig
from .manifest_shape import BadManifestShape, check_manifest_shape
from .relay import read_bounded
from .routing import Target

# Response headers of the upstream that a client relies on.
KEPT_HEADERS = ("content-type", "docker-content-digest", "etag", "last-modified")
# Request headers worth forwarding besides Accept (conditional requests).
FORWARDED_HEADERS = ("if-none-match", "if-modified-since")

logger = logging.getLogger(__name__)


async def serve_manifest(request: Request, target: Target, upstreams: Upstreams, config: ProxyConfig) -> Response:
    # Each Accept line travels as its own header: merged, registries answer 404 for OCI manifests.
    headers = [("Accept", value) for value in request.headers.getlist("accept")]
    headers += [(name, request.headers[name]) for name in FORWARDED_HEADERS if name in request.headers]
    client = upstreams.client(target.registry)
    path = registry_api.MANIFEST.path(name=target.repository, reference=target.reference)
    try:
        response = await client.send(
            request.method, path, client_auth=request.headers.get("authorization"), headers=headers, stream=True
        )
    except UpstreamError as exc:
        raise RegistryError(errors.UPSTREAM_FAILED, detail=str(exc)[:300]) from exc
    try:
        body = b""
        if request.method == "GET":
            too_large = RegistryError(errors.MANIFEST_INVALID, detail="manifest larger than the mirror accepts")
            body = await read_bounded(response, config.max_manifest_bytes, too_large)
    finally:
        await response.aclose()
    if response.status_code == 304:
        return Response(status_code=304, headers=_kept(response.headers))
    if response.status_code != 200:
        raise refusal(response.status_code, response.headers, body, errors.MANIFEST_UNKNOWN)
    out = _kept(response.headers)
    if request.method == "GET":
        _check_shape(body, out.get("content-type", ""), target)
        digested = _digested_bytes(body, out.get("content-type", ""))
        out["docker-content-digest"] = str(_verified_digest(digested, target.digest, out.get("docker-content-digest")))
    if request.method == "HEAD":
        length = response.headers.get("content-length")
        if length is not None:
            out["content-length"] = length
        return Response(status_code=200, headers=out)
    return Response(body, status_code=200, headers=out)


def _check_shape(body: bytes, content_type: str, target: Target) -> None:
    """A manifest that does not parse as its media type goes to no client, by tag or by digest."""
    try:
        check_manifest_shape(body, content_type)
    except BadManifestShape as exc:
        logger.warning(
            "%s: the manifest of %s:%s does not parse as %r: %s",
            target.registry.name, target.repository, target.reference, content_type[:100], exc,
        )
        raise RegistryError(
            errors.MANIFEST_INVALID, status=502,
            detail=f"the upstream sent a manifest that does not parse as its media type: {exc}",
        ) from exc


def _digested_bytes(body: bytes, content_type: str) -> bytes:
    """What a manifest's digest is computed over: the body, or a signed schema-1 manifest's signed payload."""
    if content_type.partition(";")[0].strip().lower() != SIGNED_SCHEMA1:
        return body
    try:
        return signed_payload(body)
    except InvalidSignedManifest as exc:
        raise RegistryError(
            errors.DIGEST_INVALID, status=502, detail=f"the upstream's signed schema-1 manifest is malformed: {exc}"
        ) from exc


def _verified_digest(content: bytes, asked: Digest | None, announced: str | None) -> Digest:
    """The manifest's digest, after checking `content` (what the digest covers, `_digested_bytes`) against the
    digest asked for and the one announced.

    By digest, it must hash to it (content addressing is the client's only trust anchor). By tag, the upstream's
    `Docker-Content-Digest`, when it sends one we can check, must match too: a client pins that digest and
    fetches the children of an index by it.
    """
    if asked is None and announced:
        try:
            asked = Digest.parse(announced.strip())
        except InvalidDigest:
            asked = None
    if asked is not None and not asked.matches(content):
        # The upstream's fault, not the client's: a gateway error, so clients may try the registry itself.
        raise RegistryError(
            errors.DIGEST_INVALID, status=502, detail=f"the upstream's manifest does not match {asked}"
        )
    return asked or Digest("sha256", hashlib.sha256(content).hexdigest())


def _kept(headers: httpx.Headers) -> dict[str, str]:
    return {name: headers[name] for name in KEPT_HEADERS if name in headers}
