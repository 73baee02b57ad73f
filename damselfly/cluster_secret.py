"""Secure by default: a listener beyond loopback needs the cluster's secret, and `damselfly up` makes one.

Without the secret, anyone who reaches the supernode joins the cluster, lists its swarms and hosts and registers
as a peer, and anyone who reaches a peer's upload port fetches pieces of any blob it holds. So `supernode` and
`peer` refuse to listen beyond loopback without one, unless the operator says `--insecure-open-cluster`: then the
log says so loudly at start, and the supernode's `/healthz` too (supernode/server.py).
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, replace

from .secret_files import SecretFileError, ensure_secret_file
from .settings import Settings, SettingsError

__all__ = ["UP_SECRET_FILE", "check_listeners", "is_loopback", "with_up_secret"]

log = logging.getLogger(__name__)

# In `up`'s data directory, beside the peer's id: the secret `up` made on its first start.
UP_SECRET_FILE = "join-token"


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 (also as ::ffff:127.x.x.x) or localhost; anything else, 0.0.0.0 and :: included, is not."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


@dataclass(frozen=True, slots=True)
class _Listener:
    what: str
    flag: str
    host: str
    port: int
    secret: str
    insecure: bool
    # What a stranger who reaches it could do without the secret.
    exposed: str


def _listeners(command: str, config: Settings) -> list[_Listener]:
    found = []
    if command in ("supernode", "up"):
        sn = config.supernode
        found.append(_Listener(
            "the supernode", "--listen" if command == "supernode" else "--supernode-listen", sn.listen_host,
            sn.listen_port, sn.join_token, sn.insecure_open_cluster,
            "join the cluster, list its swarms and hosts, and register as any peer",
        ))
    if command in ("peer", "up"):
        peer = config.peer
        found.append(_Listener(
            "the upload server", "--upload-listen", peer.upload_host, peer.upload_port, peer.join_token,
            peer.insecure_open_cluster, "fetch pieces of every blob this host holds",
        ))
    return found


def check_listeners(command: str, config: Settings) -> None:
    """Refuse a listener beyond loopback without the secret, or with `--insecure-open-cluster` warn that it is open."""
    for listener in _listeners(command, config):
        if listener.secret or is_loopback(listener.host):
            continue
        where = f"{listener.host}:{listener.port}"
        if not listener.insecure:
            raise SettingsError(
                f"refusing to listen on {where} ({listener.flag}) without the cluster's secret: anyone who reaches "
                f"it could {listener.exposed}; give the secret with --join-token-file FILE or $DAMSELFLY_JOIN_TOKEN, "
                "listen on loopback, or say --insecure-open-cluster"
            )
        log.warning(
            "INSECURE OPEN CLUSTER: %s listens on %s without a secret (--insecure-open-cluster): anyone who reaches "
            "it can %s", listener.what, where, listener.exposed,
        )


def with_up_secret(config: Settings) -> Settings:
    """`up`'s supernode and peer with one secret: the one given (a file or the environment), else the one in the data
    directory, made there (mode 0600) on the first start and reused after."""
    secret = config.supernode.join_token or config.peer.join_token
    if not secret:
        path = config.peer.data_dir / UP_SECRET_FILE
        try:
            secret = ensure_secret_file(path)
        except SecretFileError as exc:
            raise SettingsError(str(exc)) from None
    return replace(
        config, supernode=replace(config.supernode, join_token=secret), peer=replace(config.peer, join_token=secret)
    )
