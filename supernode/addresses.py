"""Where other peers are sent to dial a peer: the address it advertises at register, checked before it is handed out.

Every member dials the parent URLs the supernode hands out, so a free-form advertised address would let one member
make every other host send requests where it likes (another port, a path and a query of its choosing). So the
advertised host is an IP address only (no scheme, userinfo, port, path or query), the port is checked by the
request's parser, and the address must be the one the supernode sees the peer at, unless it lies in the configured
`peer_networks` (NAT, a host with several interfaces). Host names are refused, not looked up: a name could resolve
elsewhere when peers dial it than when it was checked, and the supernode would make DNS queries of a member's
choosing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from .api import BadRequest

__all__ = ["AddressPolicy", "IPAddress", "parse_address", "peer_url"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str) -> IPAddress | None:
    """An IP literal (IPv6 also in brackets), IPv4-mapped IPv6 as the IPv4 it is; None if `text` is none."""
    bracketed = text.startswith("[") and text.endswith("]")
    inner = text[1:-1] if bracketed else text
    if "%" in inner:  # a zone id (fe80::1%eth0) means something on this host only
        return None
    try:
        address = ipaddress.ip_address(inner)
    except ValueError:
        return None
    if bracketed and address.version != 6:
        return None  # "[10.0.0.1]" is no address
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_address(text: str) -> IPAddress:
    """The advertised host as an address peers can dial; BadRequest for anything else."""
    address = _address(text)
    if address is None:
        raise BadRequest("'advertise_host' must be an IP address only: no host name, scheme, port, path or query")
    if address.is_unspecified or address.is_multicast:
        raise BadRequest("'advertise_host' must be an address peers can dial (not 0.0.0.0, ::, or multicast)")
    return address


def peer_url(address: IPAddress, port: int) -> str:
    host = f"[{address}]" if address.version == 6 else str(address)
    return f"http://{host}:{port}"


class AddressPolicy:
    """Which advertised addresses a peer seen at some address may have handed out to others."""

    def __init__(self, networks: Sequence[str]) -> None:
        parsed: list[IPNetwork] = [ipaddress.ip_network(n, strict=False) for n in networks]
        self.networks = tuple(parsed)

    def address_for(self, advertised: str, seen_host: str) -> IPAddress:
        """The address peers are to dial: `advertised` if it passes, else (none advertised) where the supernode sees
        the peer."""
        seen = _address(seen_host)
        if not advertised:
            if seen is None:
                raise BadRequest("the supernode cannot tell the peer's address: advertise one ('advertise_host')")
            return seen
        address = parse_address(advertised)
        if address == seen or any(address in network for network in self.networks):
            return address
        networks = ", ".join(map(str, self.networks)) or "none"
        raise BadRequest(
            f"'advertise_host' {address} is neither the address the supernode sees this peer at ({seen_host}) nor in "
            f"its peer_networks ({networks})"
        )
