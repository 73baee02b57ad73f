"""A client of one upstream registry: token flow, Basic auth, the client's own credentials, retries.

Credentials, in order of precedence:
1. the client's own `Authorization` header, forwarded as it is;
2. the credentials configured for the registry (Basic, or exchanged for a Bearer token);
3. anonymous: a Bearer challenge is answered with an anonymous token when the realm grants one.
A 401 that survives all this is handed back to the caller with its `WWW-Authenticate` intact, so docker and
containerd run their own token flow against the upstream's realm.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from cachetools import LRUCache

_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
# Response headers worth giving back to a client when the upstream refuses.
PASSBACK_HEADERS = ("www-authenticate", "retry-after", "docker-distribution-api-version")


@dataclass(slots=True)
class UpstreamRegistry:
    """One configured upstream registry."""

    # The name clients use for it (`registry.example.test`, `docker.io`).
    name: str
    url: str
    username: str = ""
    password: str = ""
    ca_file: str = ""
    insecure: bool = False
    # Docker Hub's one-word names (`alpine`) live under `library/`.
    library_prefix: bool = False

    @property
    def has_credentials(self) -> bool:
        return bool(self.username)


class UpstreamError(Exception):
    """The upstream could not be reached, or kept failing after retries."""


@dataclass(slots=True)
class _Token:
    value: str
    expires_at: float


class RegistryClient:
    def __init__(self, registry: UpstreamRegistry, http: httpx.AsyncClient, *, attempts: int, backoff: float):
        self.registry = registry
        self.http = http
        self.attempts = attempts
        self.backoff = backoff
        self._tokens: LRUCache[tuple[str, str, str, str], _Token] = LRUCache(maxsize=4096)

    def url(self, path: str) -> str:
        return self.registry.url.rstrip("/") + path

    async def send(
        self,
        method: str,
        path: str,
        *,
        client_auth: str | None,
        headers: Sequence[tuple[str, str]] = (),
        stream: bool = False,
    ) -> httpx.Response:
        """One request with auth and retries on 429/5xx and connection errors; the caller closes it."""
        auth = client_auth or self._basic()
        last_error: Exception | None = None
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(min(self.backoff * 2 ** (attempt - 1), 8.0))
            try:
                response = await self._send_once(method, path, auth, headers, stream)
                if response.status_code == 401 and client_auth is None:
                    token_auth = await self._answer_challenge(response)
                    if token_auth is not None:
                        await response.aclose()
                        auth = token_auth
                        response = await self._send_once(method, path, auth, headers, stream)
                if response.status_code in RETRYABLE_STATUS and attempt + 1 < self.attempts:
                    await response.aclose()
                    last_error = UpstreamError(f"upstream answered {response.status_code}")
                    continue
                return response
            except httpx.TransportError as exc:
                last_error = exc
        raise UpstreamError(f"{self.registry.name}: {last_error}")

    async def _send_once(
        self, method: str, path: str, auth: str | None, headers: Sequence[tuple[str, str]], stream: bool
    ) -> httpx.Response:
        all_headers = list(headers)
        if auth:
            all_headers.append(("Authorization", auth))
        request = self.http.build_request(method, self.url(path), headers=all_headers)
        return await self.http.send(request, stream=stream, follow_redirects=True)

    def _basic(self) -> str | None:
        if not self.registry.has_credentials:
            return None
        raw = f"{self.registry.username}:{self.registry.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    async def _answer_challenge(self, response: httpx.Response) -> str | None:
        """Exchange a Bearer challenge for a token (configured credentials, else anonymous)."""
        challenge = response.headers.get("www-authenticate", "")
        scheme, _, params_text = challenge.partition(" ")
        if scheme.lower() != "bearer":
            return None
        params = dict(_CHALLENGE_PARAM.findall(params_text))
        realm = params.get("realm", "")
        if not realm.startswith(("http://", "https://")):
            return None
        key = (realm, params.get("service", ""), params.get("scope", ""), self.registry.username)
        cached = self._tokens.get(key)
        if cached is not None and cached.expires_at > time.monotonic():
            return "Bearer " + cached.value
        query = {k: v for k, v in (("service", key[1]), ("scope", key[2])) if v}
        headers = {}
        basic = self._basic()
        if basic:
            headers["Authorization"] = basic
        try:
            token_response = await self.http.get(realm, params=query, headers=headers)
        except httpx.TransportError:
            return None
        if token_response.status_code != 200:
            return None
        try:
            body = token_response.json()
        except ValueError:
            return None
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            return None
        expires_in = body.get("expires_in", 60)
        lifetime = float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else 60.0
        # Renew a little early so a token never expires between check and use.
        self._tokens[key] = _Token(token, time.monotonic() + max(lifetime - 10.0, lifetime / 2))
        return "Bearer " + token


@dataclass(slots=True)
class BlobSource:
    """Where one blob can be had from the upstream, with the credentials of the request that asked for it."""

    client: RegistryClient
    repository: str
    digest: str
    client_auth: str | None

    @asynccontextmanager
    async def open_range(self, start: int, end: int) -> AsyncIterator[AsyncIterator[bytes]]:
        """Stream bytes [start, end] (inclusive) of the blob; raises UpstreamError if not possible."""
        headers = [("Range", f"bytes={start}-{end}")]
        response = await self.client.send(
            "GET",
            f"/v2/{self.repository}/blobs/{self.digest}",
            client_auth=self.client_auth,
            headers=headers,
            stream=True,
        )
        try:
            if response.status_code == 206:
                yield response.aiter_raw()
            elif response.status_code == 200:
                # The upstream ignored Range: skip to where we want to be.
                yield _skip(response.aiter_raw(), start)
            else:
                raise UpstreamError(f"upstream answered {response.status_code} for the blob")
        finally:
            await response.aclose()


async def _skip(chunks: AsyncIterator[bytes], count: int) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        if count >= len(chunk):
            count -= len(chunk)
            continue
        yield chunk[count:] if count else chunk
        count = 0
