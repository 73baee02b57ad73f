"""A small Docker token server (the `realm` of `WWW-Authenticate: Bearer`) for the real registry's `auth: token`.

    with TokenServer(tmp_path / "tokens", users={"alice": "pw"}, public=["pub/app"]) as tokens:
        registry = RegistryServer(..., token_auth=tokens.registry_auth())

It answers `GET /token?service=…&scope=repository:<name>:<actions>` (anonymous or with Basic auth), and the
OAuth2 password grant (`POST /token`, which containerd tries first when it has credentials), with
`{"token", "access_token", "expires_in"}`, granting `pull` on public repositories to anyone and every asked
action on every repository to a known user. Wrong credentials get 401. Every request is recorded, so tests can
count token fetches (token caching) and see who asked.

What docker-registry 2.8.2 accepts, found by experiment: ES256 tokens whose header carries the signing
certificate as `x5c` (base64 DER), that certificate being in `rootcertbundle`; `iss` equal to the configured
issuer, `aud` equal to the service, and `exp`/`nbf`/`iat` as numbers. A token granting no access for the
repository makes the registry answer 401 with `error="insufficient_scope"` in its challenge.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization

from tests.support.http_server import BackgroundHTTPServer
from tests.support.tls import TestCA


@dataclass(frozen=True)
class TokenRequest:
    account: str  # "" for anonymous
    scopes: tuple[str, ...]
    status: int


@dataclass
class TokenServer(BackgroundHTTPServer):
    directory: Path
    users: dict[str, str] = field(default_factory=dict)
    public: list[str] = field(default_factory=list)
    service: str = "damselfly-test-registry"
    issuer: str = "damselfly-test-token-issuer"
    expires_in: int = 300
    requests: list[TokenRequest] = field(default_factory=list)
    _signer: TestCA | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def realm(self) -> str:
        return f"{self.base_url}/token"

    def registry_auth(self) -> dict[str, Any]:
        """The registry's `auth: token:` section that trusts this server."""
        assert self._signer is not None, "token server not started"
        return {
            "realm": self.realm,
            "service": self.service,
            "issuer": self.issuer,
            "rootcertbundle": str(self._signer.cert_path),
        }

    def start(self) -> Self:
        # Before the server answers: the handler signs every token with it.
        self._signer = TestCA.create(self.directory, common_name="damselfly test token signer")
        return super().start()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    def token_requests(self, account: str | None = None) -> list[TokenRequest]:
        with self._lock:
            return [r for r in self.requests if account is None or r.account == account]

    # -- the token logic ---------------------------------------------------------------------------

    def grant(self, account: str, scopes: list[str]) -> list[dict[str, Any]]:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind != "repository" or not name:
                continue
            wanted = [a for a in actions.split(",") if a]
            if account:
                granted = wanted
            elif name in self.public:
                granted = [a for a in wanted if a == "pull"]
            else:
                granted = []
            if granted:
                access.append({"type": "repository", "name": name, "actions": granted})
        return access

    def sign(self, account: str, access: list[dict[str, Any]]) -> str:
        assert self._signer is not None
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": account,
            "aud": self.service,
            "exp": now + self.expires_in,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        x5c = base64.b64encode(self._signer.cert.public_bytes(serialization.Encoding.DER)).decode()
        return jwt.encode(claims, self._signer.key, algorithm="ES256", headers={"x5c": [x5c]})

    def authenticate(self, header: str | None) -> str | None:
        """The account of a Basic header ("" when there is none); None for wrong credentials."""
        if not header:
            return ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return self.check_password(user, password)

    def check_password(self, user: str, password: str) -> str | None:
        known = self.users.get(user)
        return user if known is not None and secrets.compare_digest(known, password) else None

    def record(self, request: TokenRequest) -> None:
        with self._lock:
            self.requests.append(request)


def _handler_for(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            account = server.authenticate(self.headers.get("Authorization"))
            self._answer(url.path, query, account)

        def do_POST(self) -> None:
            # The OAuth2 password grant containerd tries first when it has credentials.
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode())
            account: str | None = ""
            if form.get("grant_type", [""])[0] == "password":
                account = server.check_password(form.get("username", [""])[0], form.get("password", [""])[0])
            self._answer(url.path, form, account)

        def _answer(self, path: str, query: dict[str, list[str]], account: str | None) -> None:
            scopes = [s for value in query.get("scope", []) for s in value.split(" ") if s]
            if path != "/token" or query.get("service", [server.service])[0] != server.service:
                self._reply(404, {"error": "unknown service"})
                server.record(TokenRequest(account or "", tuple(scopes), 404))
                return
            if account is None:
                server.record(TokenRequest("?", tuple(scopes), 401))
                self._reply(401, {"error": "wrong credentials"}, {"WWW-Authenticate": 'Basic realm="token"'})
                return
            token = server.sign(account, server.grant(account, scopes))
            server.record(TokenRequest(account, tuple(scopes), 200))
            self._reply(200, {"token": token, "access_token": token, "expires_in": server.expires_in})

        def _reply(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
