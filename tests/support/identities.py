"""Hosts' identities for tests that speak the supernode's API by hand (supernode/identity.py).

A test names its hosts briefly ("p0", "p1"); each name has a fixed secret and the peer id bound to it, so a test
can rebuild the same host after a supernode restart. What the supernode answers at register (the credential)
is kept in a `Registered`, whose headers every later call about that host carries.

    host = registered("p0", answer_json)
    client.post(routes.HEARTBEAT.url(peer_id=host.peer_id), headers={**join, **host.headers})
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from supernode.api import RegisterRequest
from supernode.identity import CREDENTIAL_HEADER, PEER_HEADER, bound_peer_id

# The operators' token of the tests that read the supernode's listings from outside.
OPERATOR_TOKEN = "operator-token-of-the-tests"


def secret_of(name: str) -> str:
    """The fixed secret of the test host `name`: deterministic, so a "restarted" host is the same host."""
    return f"test-secret-of-{name}"


def peer_id(name: str) -> str:
    """The bound peer id of the test host `name` (it commits to `secret_of(name)`)."""
    return bound_peer_id(name, secret_of(name))


def register_body(name: str, upload_port: Any = 65002, **fields: Any) -> dict[str, Any]:
    """The JSON body a host sends to register: its bound id, its port, its secret, and any other field."""
    return {"peer_id": peer_id(name), "upload_port": upload_port, "peer_secret": secret_of(name), **fields}


def register_request(
    name: str, upload_port: int = 65002, advertise_host: str = "", labels: dict[str, str] | None = None
) -> RegisterRequest:
    return RegisterRequest(peer_id(name), upload_port, advertise_host, labels or {}, secret_of(name))


def credential_headers(peer: str, credential: str) -> dict[str, str]:
    """The headers of a call about `peer` (its id, for the listings, and the credential it was issued)."""
    return {PEER_HEADER: peer, CREDENTIAL_HEADER: credential}


def operator_headers(token: str = OPERATOR_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def asgi_headers(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    """Headers as an ASGI scope carries them: lower-case names, bytes."""
    return [(name.lower().encode(), value.encode()) for name, value in headers.items()]


@dataclass(frozen=True, slots=True)
class Registered:
    """A test host as the supernode registered it: its id and the credential it was answered."""

    name: str
    peer_id: str
    credential: str

    @property
    def headers(self) -> dict[str, str]:
        return credential_headers(self.peer_id, self.credential)


def registered(name: str, answer: Mapping[str, Any]) -> Registered:
    """The host `name` from the supernode's register answer, checked to be about that host."""
    assert answer["peer_id"] == peer_id(name), answer
    credential = answer["credential"]
    assert isinstance(credential, str) and credential, answer
    return Registered(name, peer_id(name), credential)
