"""Credentials for one upstream registry: Basic from the configuration, Bearer tokens from a challenge's realm.

Tokens are cached per (realm, service, scope, credential) until shortly before they expire, keyed by a hash of
the credential so one client's token is never handed to another. The token that last worked for a repository
and credential is remembered too (`hint`), so a request sends it at once instead of first collecting a 401.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from dataclasses import dataclass

import httpx
from cachetools import LRUCache

from .config import UpstreamConfig
from .registry import UpstreamRegistry

_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
# A token is renewed this long before it expires, so it never expires between check and use.
_RENEW_EARLY = 10.0


@dataclass(slots=True)
class Token:
    value: str
    expires_at: float

    @property
    def authorization(self) -> str:
        return "Bearer " + self.value

    def fresh(self) -> bool:
        return self.expires_at > time.monotonic()


def configured_basic(registry: UpstreamRegistry) -> str | None:
    """The `Authorization` value of the registry's configured credentials; None when it has none."""
    if not registry.has_credentials:
        return None
    raw = f"{registry.username}:{registry.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def basic_of(authorization: str | None) -> str | None:
    """`authorization` if it is Basic (and so may be exchanged for a token), else None."""
    return authorization if authorization is not None and authorization[:6].lower() == "basic " else None


def _credential_key(basic: str | None) -> str:
    return hashlib.sha256((basic or "").encode()).hexdigest()


class BearerTokens:
    """The tokens of one registry's realms, got with `http` and kept as `config` says."""

    def __init__(self, http: httpx.AsyncClient, config: UpstreamConfig) -> None:
        self.http = http
        self.config = config
        self._tokens: LRUCache[tuple[str, str, str, str], Token] = LRUCache(maxsize=config.token_cache_size)
        # (repository, credential hash) -> the token that last worked there
        self._hints: LRUCache[tuple[str, str], Token] = LRUCache(maxsize=config.token_cache_size)

    def hint(self, repository: str, basic: str | None) -> Token | None:
        """The unexpired token that last worked for `repository` with these credentials (None: anonymous)."""
        token = self._hints.get((repository, _credential_key(basic)))
        return token if token is not None and token.fresh() else None

    def remember(self, repository: str, basic: str | None, token: Token | None) -> None:
        """`token` worked for `repository` (None: no token did, forget the last one)."""
        key = (repository, _credential_key(basic))
        if token is None:
            self._hints.pop(key, None)
        else:
            self._hints[key] = token

    def forget(self, token: Token) -> None:
        """The upstream refused `token`: the next request asks the realm afresh."""
        for key in [k for k, cached in self._tokens.items() if cached is token]:
            del self._tokens[key]

    async def answer(self, challenge: str, basic: str | None, rejected: str | None) -> Token | None:
        """Exchange a Bearer `challenge` for a token with `basic` credentials, or anonymously when None.

        A cached token is reused unless it is the one the upstream just `rejected`. None when the challenge is
        not Bearer, or the realm gives no token.
        """
        scheme, _, params_text = challenge.partition(" ")
        if scheme.lower() != "bearer":
            return None
        params = dict(_CHALLENGE_PARAM.findall(params_text))
        realm = params.get("realm", "")
        if not realm.startswith(("http://", "https://")):
            return None
        key = (realm, params.get("service", ""), params.get("scope", ""), _credential_key(basic))
        cached = self._tokens.get(key)
        if cached is not None and cached.fresh() and cached.authorization != rejected:
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
        value = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(value, str) or not value:
            return None
        expires_in = body.get("expires_in")
        valid = isinstance(expires_in, int | float) and expires_in > 0
        lifetime = float(expires_in) if valid else self.config.default_token_lifetime
        token = Token(value, time.monotonic() + max(lifetime - _RENEW_EARLY, lifetime / 2))
        self._tokens[key] = token
        return token
