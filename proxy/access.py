"""Access control: a client gets a blob only if the upstream would give it to them.

Before a blob is served, from the local store or from the swarm, the upstream is asked (HEAD, which Docker Hub
does not count as a pull) with the client's own credentials, or the registry's configured ones. A yes is
remembered briefly per (credential, registry, repository, digest); a no is handed back as the upstream said it.
"""

from __future__ import annotations

import asyncio
import hashlib

import httpx
from cachetools import TTLCache

from core import errors, registry_api
from core.errors import RegistryError, error_for_status, is_oci_error_body
from upstream.client import PASSBACK_HEADERS, UpstreamError
from upstream.clients import Upstreams

from .routing import Target


class AccessChecker:
    def __init__(self, upstreams: Upstreams, ttl: float, maxsize: int = 100_000) -> None:
        self.upstreams = upstreams
        self._allowed: TTLCache[tuple[str, str, str, str], int] = TTLCache(maxsize=maxsize, ttl=ttl)
        # Checks under way: concurrent requests for the same key wait for one answer instead of each asking.
        self._asking: dict[tuple[str, str, str, str], asyncio.Future[int]] = {}

    async def blob_size(self, target: Target, client_auth: str | None) -> int:
        """The blob's size if this client may read it; raises the upstream's refusal otherwise."""
        key = (credential_key(client_auth), target.registry.name, target.repository, target.reference)
        size = self._allowed.get(key)
        if size is not None:
            return size
        pending = self._asking.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._asking[key] = future
        try:
            size = await self._ask(target, client_auth)
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, Exception) else RegistryError(errors.UNAVAILABLE))
            future.exception()  # retrieved here, so a check nobody else waited for does not warn
            raise
        else:
            self._allowed[key] = size
            future.set_result(size)
            return size
        finally:
            del self._asking[key]

    async def _ask(self, target: Target, client_auth: str | None) -> int:
        client = self.upstreams.client(target.registry)
        try:
            path = registry_api.BLOB.path(name=target.repository, digest=target.reference)
            response = await client.send("HEAD", path, client_auth=client_auth)
        except UpstreamError as exc:
            raise RegistryError(errors.UPSTREAM_FAILED, detail=str(exc)[:300]) from exc
        await response.aclose()
        if response.status_code != 200:
            raise refusal(response.status_code, response.headers, b"")
        length = response.headers.get("content-length", "")
        if not length.isdigit():
            raise RegistryError(errors.UPSTREAM_FAILED, detail="the upstream gave no blob size")
        return int(length)


def credential_key(client_auth: str | None) -> str:
    """What a cache keys a client's credentials by: a hash, so no cache holds a secret."""
    return hashlib.sha256((client_auth or "").encode()).hexdigest()


def refusal(
    status: int, headers: httpx.Headers, body: bytes, unknown: errors.ErrorCode = errors.BLOB_UNKNOWN
) -> RegistryError:
    """The upstream's no, in OCI shape, with the headers a client needs (the auth challenge above all).

    `unknown` is the code for a 404 that came without an OCI body (a HEAD, or a proxy in between).
    """
    passback = {name: headers[name] for name in PASSBACK_HEADERS if name in headers}
    code = unknown if status == 404 else error_for_status(status)
    # Server errors of the upstream are ours to report as a gateway failure, not to pass on verbatim.
    out_status = status if status < 500 else code.status
    return RegistryError(
        code, status=out_status, headers=passback, body=body if body and is_oci_error_body(body) else None
    )
