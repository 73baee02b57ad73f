"""A host's identity in the cluster: a peer id bound to a secret only that host holds, and the credential the
supernode issues against it.

The peer id ends in a commitment to the host's own secret (`NAME-` and 24 hex digits of the secret's sha256), so
the id cannot be claimed by anyone without the secret, whatever the supernode remembers: after a supernode
restart nobody can register first under another host's id. At register the host shows its secret once; the
supernode answers with a credential, random, of its own making and kept only as a hash, that every later call
about that peer (heartbeat, leave, join, report, view) must carry. So nobody can report for, take over or delete
another host. A credential is per supernode process: several processes (supernode/shards.py) issue one each,
and a restarted one issues new ones when the peers register again.

Under mutual TLS (the supernode's `client_ca`) the certificate is the identity instead: a host's peer id is its
certificate's common name, and every call about a peer must come over a connection that presented that peer's
certificate (damselfly/client_cert.py puts its subject in the request's scope).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from typing import Any

__all__ = [
    "CREDENTIAL_HEADER",
    "PEER_HEADER",
    "IdentityRefused",
    "bound_peer_id",
    "certificate_peer_id",
    "credential_hash",
    "is_bound",
    "new_credential",
]

# The header that carries the credential the supernode issued (and, on the listings, whose it is).
CREDENTIAL_HEADER = "X-Damselfly-Peer-Credential"
PEER_HEADER = "X-Damselfly-Peer"
COMMITMENT_HEX = 24
# Beside the ASGI TLS extension's `client_cert_name` (the whole subject), the common name alone, exactly as in the
# certificate (damselfly/client_cert.py): no parsing of an escaped subject string.
COMMON_NAME_KEY = "damselfly_common_name"
_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class IdentityRefused(PermissionError):
    """A peer id without its secret, or a call without the credential issued to that peer: answered 403."""


def _commitment(secret: str) -> str:
    return hashlib.sha256(b"damselfly peer id\n" + secret.encode()).hexdigest()[:COMMITMENT_HEX]


def bound_peer_id(name: str, secret: str) -> str:
    """The peer id for a host called `name` holding `secret`: readable first, the commitment last."""
    readable = _NAME.sub("-", name).strip("-")[:64] or "host"
    return f"{readable}-{_commitment(secret)}"


def is_bound(peer_id: str, secret: str) -> bool:
    name, sep, commitment = peer_id.rpartition("-")
    return bool(sep and name and secret) and hmac.compare_digest(commitment, _commitment(secret))


def certificate_peer_id(scope: Mapping[str, Any]) -> str:
    """The common name of the client certificate the request's connection presented; "" if none."""
    tls = scope.get("extensions", {}).get("tls") or {}
    return str(tls.get(COMMON_NAME_KEY, ""))


def new_credential() -> str:
    return secrets.token_urlsafe(24)


def credential_hash(credential: str) -> bytes:
    """What the supernode keeps of a credential: its sha256, compared in constant time."""
    return hashlib.sha256(credential.encode("utf-8", "replace")).digest()
