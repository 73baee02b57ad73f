"""This host's identity, kept in its data directory: the peer id (`peer-id`) and the secret it commits to
(`peer-secret`, mode 0600), so a restarted daemon is the same peer and nobody else can be (supernode/identity.py).

A data directory from before identities were bound (a `peer-id` without a `peer-secret`, or an id that does not
commit to the secret) gets a new identity: the old id was anyone's to claim.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

from supernode.identity import bound_peer_id, is_bound

log = logging.getLogger(__name__)
ID_FILE = "peer-id"
SECRET_FILE = "peer-secret"


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    peer_id: str
    secret: str

    def __repr__(self) -> str:
        return f"PeerIdentity({self.peer_id!r})"


def load_identity(data_dir: Path) -> PeerIdentity:
    """The identity kept in `data_dir`, made there on first use."""
    try:
        peer_id = (data_dir / ID_FILE).read_text().strip()
        secret = (data_dir / SECRET_FILE).read_text().strip()
    except FileNotFoundError:
        pass
    else:
        if is_bound(peer_id, secret):
            return PeerIdentity(peer_id, secret)
        log.warning("the peer id in %s is not bound to a secret: this host takes a new one", data_dir / ID_FILE)
    return _make(data_dir)


def _make(data_dir: Path) -> PeerIdentity:
    secret = secrets.token_urlsafe(32)
    identity = PeerIdentity(bound_peer_id(socket.gethostname(), secret), secret)
    data_dir.mkdir(parents=True, exist_ok=True)
    # The secret first, readable by its owner only, and each file written whole by a rename: a crash in between
    # leaves an id without its secret, which the next start replaces.
    _write(data_dir / SECRET_FILE, secret, 0o600)
    _write(data_dir / ID_FILE, identity.peer_id, 0o644)
    return identity


def _write(path: Path, text: str, mode: int) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as file:
        file.write(text + "\n")
    temporary.replace(path)
