"""A client of one upstream registry: requests with the right credentials, retried on 429, 5xx and lost
connections.

Credentials, in order of precedence:
1. the client's own `Authorization` header, forwarded as it is; a client's Basic credentials meeting a Bearer
   challenge are exchanged for a token at the upstream's realm, as a registry client would do;
2. the credentials configured for the registry (Basic, or exchanged for a Bearer token);
3. anonymous: a Bearer challenge is answered with an anonymous token when the realm grants one.
A 401 that survives all this is handed back to the caller with its `WWW-Authenticate` intact, so docker and
containerd run their own token flow against the upstream's realm.
Redirects (307 to object storage) are followed where the registry's redirect policy allows them
(`upstream.redirects`: its own origin, public addresses, its `redirect_networks`), to the address that policy
checked; `Authorization` is dropped when a redirect leaves the origin. A refused redirect is an `UpstreamError`.
Blob bodies go through `raw_http` (`get_raw`), which receives them into the caller's buffers; everything else,
and a body not framed by Content-Length, through httpx (`send`). Both share one retry and token logic
(`_exchange`). Paths are built from the route table (`core.registry_api`).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import httpx

from core import registry_api

from .auth import BearerTokens, basic_of, configured_basic
from .config import UpstreamConfig
from .raw_http import RawHttpClient, RawHttpError, RawResponse
from .redirects import Headers, RedirectPolicy, RedirectRefused, Reply, pinned
from .registry import UpstreamRegistry

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
# Response headers worth giving back to a client when the upstream refuses.
PASSBACK_HEADERS = ("www-authenticate", "retry-after", "docker-distribution-api-version")


class UpstreamError(Exception):
    """The upstream could not be reached, or kept failing after retries."""


# What the retry and token logic needs of a response (`Reply`), from httpx or from `raw_http`.
R = TypeVar("R", bound=Reply)


class RegistryClient:
    def __init__(
        self,
        registry: UpstreamRegistry,
        http: httpx.AsyncClient,
        config: UpstreamConfig,
        *,
        raw: RawHttpClient | None = None,
    ):
        self.registry = registry
        self.http = http
        self.config = config
        # Blob bodies go through `raw` when there is one: it receives them without httpx's copies.
        self.raw = raw
        self.tokens = BearerTokens(http, config)
        self.redirects = RedirectPolicy(
            registry.name, registry.url, registry.redirect_networks, resolve_timeout=config.connect_timeout
        )

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
            return await raw.get(self.url(path), _encode_headers(headers, auth), redirects=self.redirects)

        return await self._exchange(path, client_auth, once)

    async def _exchange(self, path: str, client_auth: str | None, once: Callable[[str | None], Awaitable[R]]) -> R:
        """Run `once(authorization)` with the credentials to use, answering Bearer challenges and retrying."""
        auth = client_auth or configured_basic(self.registry)
        # Basic credentials (the client's, else the configured ones) may be exchanged for a Bearer token.
        basic = basic_of(auth)
        exchangeable = client_auth is None or basic is not None
        # The token that last worked for this repository and credential is sent at once: without it every
        # request, every piece of a blob, would first collect a 401 to learn what it already knows.
        repository = _repository_of(path) if exchangeable else None
        hint = self.tokens.hint(repository, basic) if repository is not None else None
        if hint is not None:
            auth = hint.authorization
        last_error: Exception | None = None
        for attempt in range(self.config.attempts):
            if attempt:
                await asyncio.sleep(min(self.config.backoff * 2 ** (attempt - 1), self.config.max_backoff))
            try:
                response = await once(auth)
                if response.status_code == 401 and exchangeable:
                    challenge = response.headers.get("www-authenticate", "")
                    token = await self.tokens.answer(challenge, basic, rejected=auth)
                    if token is not None and token.authorization != auth:
                        await response.aclose()
                        auth = token.authorization
                        response = await once(auth)
                    if token is not None and response.status_code == 401:
                        self.tokens.forget(token)  # refused even so: the next request asks the realm afresh
                    if repository is not None:
                        worked = token is not None and response.status_code != 401
                        self.tokens.remember(repository, basic, token if worked else None)
                if response.status_code in RETRYABLE_STATUS and attempt + 1 < self.config.attempts:
                    await response.aclose()
                    last_error = UpstreamError(f"upstream answered {response.status_code}")
                    continue
                return response
            except RedirectRefused as exc:
                # Where the upstream points does not change with another try.
                raise UpstreamError(f"{self.registry.name}: {exc}") from exc
            except (httpx.TransportError, RawHttpError) as exc:
                last_error = exc
                if _is_tls_failure(exc):
                    break  # a certificate or protocol mismatch is configuration: retrying cannot help
        raise UpstreamError(f"{self.registry.name}: {last_error}")

    async def _send_once(
        self, method: str, path: str, auth: str | None, headers: Sequence[tuple[str, str]], stream: bool
    ) -> httpx.Response:
        async def once(url: httpx.URL, sent: Headers, address: str | None) -> httpx.Response:
            request = self.http.build_request(
                method, pinned(url, address), headers=_pinned_headers(sent, url, address),
                extensions={"sni_hostname": url.host} if address is not None and url.scheme == "https" else None,
            )
            return await self.http.send(request, stream=stream, follow_redirects=False)

        return await self.redirects.follow(httpx.URL(self.url(path)), _encode_headers(headers, auth), once)

    async def ping(self) -> tuple[int, str]:
        """`GET /v2/` without credentials, once: the status and the `WWW-Authenticate` challenge (or "")."""
        try:
            response = await self.http.get(self.url(registry_api.BASE.path()), timeout=self.config.ping_timeout)
        except httpx.TransportError as exc:
            raise UpstreamError(f"{self.registry.name}: {exc}") from exc
        return response.status_code, response.headers.get("www-authenticate", "")


def _repository_of(path: str) -> str | None:
    """The repository a registry API path is about; None for paths about none (the ping)."""
    found = registry_api.match(path)
    return found[1].get("name") if found is not None else None


def _encode_headers(headers: Sequence[tuple[str, str]], auth: str | None) -> list[tuple[bytes, bytes]]:
    all_headers = list(headers)
    if auth:
        all_headers.append(("Authorization", auth))
    # Header values arrive decoded as latin-1 (ASGI); they go out as the same bytes, whatever they hold, rather
    # than failing to encode as ASCII.
    return [(name.encode("latin-1"), value.encode("latin-1", "replace")) for name, value in all_headers]


def _pinned_headers(headers: Headers, url: httpx.URL, address: str | None) -> list[tuple[bytes, bytes]]:
    """`headers`, with `Host` naming the URL's host when the request connects to a checked address instead."""
    return [*headers, (b"Host", url.netloc)] if address is not None else list(headers)


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
