"""A cluster's scopes and which hosts they place in it: a host is in a cluster if it matches any scope, or if it
registered with the cluster's join token (`joined`).

- labels: a selector, every `key=value` of which the host's labels hold (an empty selector is no scope);
- CIDRs: the host's address (the one other peers dial) is in one of them;
- hostnames: the host's name matches one of them, `*` and `?` as in shell globs, case aside.
"""

from __future__ import annotations

import fnmatch
import hmac
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$")
HOSTNAME = re.compile(r"^[A-Za-z0-9*?][A-Za-z0-9.*?_-]{0,252}$")
MAX_SCOPES = 256

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class BadScope(ValueError):
    """A scope that cannot be a scope: the message says which and why."""


@dataclass(frozen=True, slots=True)
class Scopes:
    labels: dict[str, str]
    cidrs: tuple[Network, ...]
    hostnames: tuple[str, ...]

    @classmethod
    def of(cls, labels: dict[str, str], cidrs: list[str], hostnames: list[str]) -> Scopes:
        """From stored or asked-for values; BadScope names the first bad one."""
        for key, value in labels.items():
            if not LABEL_KEY.match(key) or not isinstance(value, str) or len(value) > 255 or not value.isprintable():
                raise BadScope(f"labels: {key[:64]!r}={str(value)[:64]!r} is no label (KEY=VALUE, a short key)")
        networks = []
        for cidr in cidrs:
            try:
                networks.append(ipaddress.ip_network(cidr, strict=False))
            except ValueError:
                raise BadScope(f"cidrs: {cidr[:64]!r} is no CIDR (like 10.1.0.0/16)") from None
        for name in hostnames:
            if not HOSTNAME.match(name):
                raise BadScope(f"hostnames: {name[:64]!r} is no host name (letters, digits, '.', '-', globs * ?)")
        if len(labels) + len(cidrs) + len(hostnames) > MAX_SCOPES:
            raise BadScope(f"at most {MAX_SCOPES} scopes in all")
        return cls(dict(labels), tuple(networks), tuple(h.lower() for h in hostnames))

    def places(self, labels: dict[str, str], url: str, hostname: str) -> bool:
        if self.labels and all(labels.get(k) == v for k, v in self.labels.items()):
            return True
        if self.cidrs:
            address = address_of(url)
            if address is not None and any(address.version == n.version and address in n for n in self.cidrs):
                return True
        name = hostname.lower()
        return bool(name) and any(fnmatch.fnmatchcase(name, pattern) for pattern in self.hostnames)


def joined(host_token_hash: str, cluster_token_hash: str) -> bool:
    """Whether the host registered with the cluster's join token: the two sha256s, compared in constant time. A
    rotated token changes the cluster's, and the hosts that joined with the old one are out."""
    if not host_token_hash or not host_token_hash.isascii() or not cluster_token_hash.isascii():
        return False
    return hmac.compare_digest(host_token_hash, cluster_token_hash)


def address_of(url: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address of a host's upload URL (`http://10.0.0.5:65002`); None if it names no address."""
    try:
        host = urlsplit(url).hostname
        return ipaddress.ip_address(host) if host else None
    except ValueError:
        return None


def parse_label(text: str) -> tuple[str, str]:
    """`KEY=VALUE` (a query's `label=`, the CLI's `--label`)."""
    key, sep, value = text.partition("=")
    if not sep or not LABEL_KEY.match(key):
        raise BadScope(f"label: expected KEY=VALUE, got {text[:64]!r}")
    return key, value
