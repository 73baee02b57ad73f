"""A client of one upstream registry: token flow, Basic auth, the client's own credentials, retries.

Credentials, in order of precedence:
1. the client's own `Authorization` header, forwarded as it is; a client's Basic credentials meeting a Bearer
   challenge are exchanged for a token at the upstream's realm, as a registry client would do;
2. the credentials configured for the registry (Basic, or exchanged for a Bearer token);
3. anonymous: a Bearer challenge is answered with an anonymous token when the realm grants one.
Tokens are cached per (realm, service, scope, credential) until shortly before they expire.
A 401 that survives all this is handed back to the caller with its `WWW-Authenticate` intact, so docker and
containerd run their own token flow against the upstream's realm.
Redirects (307 to object storage) are followed; `Authorization` is dropped when a redirect leaves the origin.
Blob bodies (`BlobSource`) go through `raw_http`, which receives them into the download's buffers; everything else,
and a body not framed by Content-Length, through httpx. Both share one retry and token logic (`_exchange`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol, TypeVar

import httpx
from cachetools import LRUCache

from .raw_http import RawHttpClient, RawHttpError, RawResponse
from .source import ChunkedBody, RangeBody

_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_REPOSITORY_PATH = re.compile(r"^/v2/(.+)/(?:manifests|blobs)/[^/]+$")
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
# The ping only tells clients how to authenticate: it must answer quickly even when the upstream does not.
_PING_TIMEOUT = 3.0
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


class Reply(Protocol):
    """What the retry and token logic needs of a response, from httpx or from `raw_http`."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> httpx.Headers: ...

    async def aclose(self) -> None: ...


R = TypeVar("R", bound=Reply)


class RegistryClient:
    def __init__(
        self,
        registry: UpstreamRegistry,
        http: httpx.AsyncClient,
        *,
        attempts: int,
        backoff: float,
        raw: RawHttpClient | None = None,
    ):
        self.registry = registry
        self.http = http
        # Blob bodies go through `raw` when there is one: it receives them without httpx's copies.
        self.raw = raw
        self.attempts = attempts
        self.backoff = backoff
        self._tokens: LRUCache[tuple[str, str, str, str], _Token] = LRUCache(maxsize=4096)
        # (repository, credential hash) -> the token that last worked there
        self._hints: LRUCache[tuple[str, str], _Token] = LRUCache(maxsize=4096)

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

        async def once(auth: str | None) -> httpx.Response:
            return await self._send_once(method, path, auth, headers, stream)

        return await self._exchange(path, client_auth, once)

    async def get_raw(
        self, path: str, *, client_auth: str | None, headers: Sequence[tuple[str, str]] = ()
    ) -> RawResponse | None:
        """A GET whose body is read into the caller's buffers (`raw_http`), with the same auth and retries as
        `send`; None if this client has no raw transport. The caller closes the response."""
        raw = self.raw
        if raw is None:
            return None

        async def once(auth: str | None) -> RawResponse:
            return await raw.get(self.url(path), _encode_headers(headers, auth))

        return await self._exchange(path, client_auth, once)

    async def _exchange(self, path: str, client_auth: str | None, once: Callable[[str | None], Awaitable[R]]) -> R:
        """Run `once(authorization)` with the credentials to use, answering Bearer challenges and retrying."""
        auth = client_auth or self._basic()
        # Basic credentials (the client's, else the configured ones) may be exchanged for a Bearer token.
        basic = auth if auth is not None and auth[:6].lower() == "basic " else None
        exchangeable = client_auth is None or basic is not None
        # The token that last worked for this repository and credential is sent at once: without it every
        # request, every piece of a blob, would first collect a 401 to learn what it already knows.
        hint_key = _hint_key(path, basic) if exchangeable else None
        hint = self._hints.get(hint_key) if hint_key is not None else None
        if hint is not None and hint.expires_at > time.monotonic():
            auth = "Bearer " + hint.value
        last_error: Exception | None = None
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(min(self.backoff * 2 ** (attempt - 1), 8.0))
            try:
                response = await once(auth)
                if response.status_code == 401 and exchangeable:
                    challenge = response.headers.get("www-authenticate", "")
                    token = await self._answer_challenge(challenge, basic, rejected=auth)
                    if token is not None and "Bearer " + token.value != auth:
                        await response.aclose()
                        auth = "Bearer " + token.value
                        response = await once(auth)
                    if token is not None and response.status_code == 401:
                        self._forget(token)  # refused even so: the next request asks the realm afresh
                    if hint_key is not None:
                        if token is not None and response.status_code != 401:
                            self._hints[hint_key] = token
                        else:
                            self._hints.pop(hint_key, None)
                if response.status_code in RETRYABLE_STATUS and attempt + 1 < self.attempts:
                    await response.aclose()
                    last_error = UpstreamError(f"upstream answered {response.status_code}")
                    continue
                return response
            except (httpx.TransportError, RawHttpError) as exc:
                last_error = exc
                if _is_tls_failure(exc):
                    break  # a certificate or protocol mismatch is configuration: retrying cannot help
        raise UpstreamError(f"{self.registry.name}: {last_error}")

    async def _send_once(
        self, method: str, path: str, auth: str | None, headers: Sequence[tuple[str, str]], stream: bool
    ) -> httpx.Response:
        request = self.http.build_request(method, self.url(path), headers=_encode_headers(headers, auth))
        return await self.http.send(request, stream=stream, follow_redirects=True)

    async def ping(self) -> tuple[int, str]:
        """`GET /v2/` without credentials, once: the status and the `WWW-Authenticate` challenge (or "")."""
        try:
            response = await self.http.get(self.url("/v2/"), timeout=_PING_TIMEOUT)
        except httpx.TransportError as exc:
            raise UpstreamError(f"{self.registry.name}: {exc}") from exc
        return response.status_code, response.headers.get("www-authenticate", "")

    def _basic(self) -> str | None:
        if not self.registry.has_credentials:
            return None
        raw = f"{self.registry.username}:{self.registry.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def _forget(self, token: _Token) -> None:
        for key in [k for k, cached in self._tokens.items() if cached is token]:
            del self._tokens[key]

    async def _answer_challenge(self, challenge: str, basic: str | None, rejected: str | None) -> _Token | None:
        """Exchange a Bearer `challenge` for a token with `basic` credentials, or anonymously when None.

        A cached token is reused unless it is the one the upstream just `rejected`.
        """
        scheme, _, params_text = challenge.partition(" ")
        if scheme.lower() != "bearer":
            return None
        params = dict(_CHALLENGE_PARAM.findall(params_text))
        realm = params.get("realm", "")
        if not realm.startswith(("http://", "https://")):
            return None
        # Keyed by a hash of the credentials: one client's token is never handed to another.
        credential = hashlib.sha256((basic or "").encode()).hexdigest()
        key = (realm, params.get("service", ""), params.get("scope", ""), credential)
        cached = self._tokens.get(key)
        if cached is not None and cached.expires_at > time.monotonic() and "Bearer " + cached.value != rejected:
            return cached
        query = {k: v for k, v in (("service", key[1]), ("scope", key[2])) if v}
        headers = {}
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
        fresh = _Token(token, time.monotonic() + max(lifetime - 10.0, lifetime / 2))
        self._tokens[key] = fresh
        return fresh


@dataclass(slots=True)
class BlobSource:
    """Where one blob can be had from the upstream, with the credentials of the request that asked for it."""

    client: RegistryClient
    repository: str
    digest: str
    client_auth: str | None

    @asynccontextmanager
    async def open_range(self, start: int, end: int) -> AsyncIterator[RangeBody]:
        """Bytes [start, end] (inclusive) of the blob; raises UpstreamError if not possible."""
        path = f"/v2/{self.repository}/blobs/{self.digest}"
        headers = [("Range", f"bytes={start}-{end}")]
        raw = await self.client.get_raw(path, client_auth=self.client_auth, headers=headers)
        if raw is not None and raw.framed and raw.status_code in (200, 206):
            try:
                if raw.status_code == 200:
                    await _discard(raw, start)  # the upstream ignored Range: skip to where we want to be
                yield raw
            finally:
                await raw.aclose()
            return
        if raw is not None:
            await raw.aclose()
            if raw.status_code not in (200, 206):
                raise UpstreamError(f"upstream answered {raw.status_code} for the blob")
        # No raw transport, or a body not framed by Content-Length: httpx handles it.
        response = await self.client.send("GET", path, client_auth=self.client_auth, headers=headers, stream=True)
        try:
            if response.status_code == 206:
                yield ChunkedBody(response.aiter_raw())
            elif response.status_code == 200:
                yield ChunkedBody(_skip(response.aiter_raw(), start))
            else:
                raise UpstreamError(f"upstream answered {response.status_code} for the blob")
        finally:
            await response.aclose()


def _encode_headers(headers: Sequence[tuple[str, str]], auth: str | None) -> list[tuple[bytes, bytes]]:
    all_headers = list(headers)
    if auth:
        all_headers.append(("Authorization", auth))
    # Header values arrive decoded as latin-1 (ASGI); they go out as the same bytes, whatever they hold, rather
    # than failing to encode as ASCII.
    return [(name.encode("latin-1"), value.encode("latin-1", "replace")) for name, value in all_headers]


def _hint_key(path: str, basic: str | None) -> tuple[str, str] | None:
    match = _REPOSITORY_PATH.match(path)
    if match is None:
        return None
    return match.group(1), hashlib.sha256((basic or "").encode()).hexdigest()


def _is_tls_failure(exc: BaseException) -> bool:
    """Whether an ssl error (untrusted certificate, TLS to a plain-HTTP port) is behind a transport error."""
    seen: BaseException | None = exc
    for _ in range(8):  # exception chains are short; the bound guards against a cycle
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def _discard(body: RawResponse, count: int) -> None:
    scratch = memoryview(bytearray(min(count, 1 << 20)))
    while count > 0:
        step = scratch[: min(count, len(scratch))]
        if await body.fill(step) < len(step):
            raise UpstreamError("the upstream ended the blob before the range asked for")
        count -= len(step)


async def _skip(chunks: AsyncIterator[bytes], count: int) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        if count >= len(chunk):
            count -= len(chunk)
            continue
        yield chunk[count:] if count else chunk
        count = 0
