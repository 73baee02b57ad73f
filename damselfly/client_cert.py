"""uvicorn's httptools protocol, telling the app which client certificate a TLS connection presented.

uvicorn verifies client certificates (`ssl_cert_reqs`) but does not put them in the ASGI scope. The supernode under
mutual TLS binds a host's peer id to its certificate (supernode/identity.py), so this protocol adds the ASGI TLS
extension's `client_cert_name` (the subject, RFC 4514 style: `CN=host-a,O=...`) to every request's scope. The
certificate is read once per connection: it cannot change within one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from supernode.identity import COMMON_NAME_KEY

__all__ = ["ClientCertHttpToolsProtocol", "common_name", "subject_name"]


def common_name(peer_cert: dict[str, Any] | None) -> str:
    for rdn in (peer_cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""


def subject_name(peer_cert: dict[str, Any] | None) -> str:
    """`ssl.SSLSocket.getpeercert()`'s subject as `CN=...,O=...`; "" without a verified certificate."""
    if not peer_cert:
        return ""
    parts = []
    for rdn in peer_cert.get("subject", ()):
        for key, value in rdn:
            short = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU"}.get(key, key)
            escaped = str(value).replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")
            parts.append(f"{short}={escaped}")
    return ",".join(parts)


class ClientCertHttpToolsProtocol(HttpToolsProtocol):
    """Pass as `uvicorn.Config(http=ClientCertHttpToolsProtocol, ssl_cert_reqs=ssl.CERT_REQUIRED, ...)`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        peer_cert = transport.get_extra_info("peercert")
        self.client_cert_name = subject_name(peer_cert)
        self.client_common_name = common_name(peer_cert)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.client_cert_name:
            extensions = self.scope.setdefault("extensions", {})
            extensions["tls"] = {
                "client_cert_name": self.client_cert_name, COMMON_NAME_KEY: self.client_common_name
            }
