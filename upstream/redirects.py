"""Which redirects of an upstream registry are followed, and the address to connect to for each.

A registry answers blob (and sometimes manifest) requests with a redirect, usually to object storage. Followed
blindly, a redirect to `127.0.0.1:...`, a private address or a cloud metadata service (`169.254.169.254`) would
make the mirror fetch an internal service's answer and hand it to a client as registry content. A redirect is
followed only when its target is:

1. the registry's own origin (same scheme, host and port as its configured URL), reached by name as always;
2. a host all of whose addresses are public (not loopback, private, link-local, multicast, reserved,
   unspecified, shared address space, nor an IPv4 address embedded in an IPv6 one that is any of these); or
3. an address inside the registry's `redirect_networks` (object storage on a private network is real).

The name is resolved here, once, and the caller connects to the address that was checked, not to a fresh
resolution of the name: DNS rebinding cannot swap a public answer for an internal one in between.
A refusal is logged once, with the target as `scheme://host:port/path`: signed URLs carry secrets in the query.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import httpx

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# Resolves (host, port) to its addresses: the event loop's getaddrinfo unless a test says otherwise.
Resolver = Callable[[str, int], Awaitable[list[str]]]

_SHARED_ADDRESS_SPACE = ipaddress.IPv4Network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # the last 32 bits are the IPv4 address translated to

logger = logging.getLogger(__name__)


class RedirectRefused(Exception):
    """The upstream redirected somewhere the mirror does not go (or redirected too often); not worth a retry."""


class Reply(Protocol):
    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> httpx.Headers: ...

    async def aclose(self) -> None: ...


R = TypeVar("R", bound=Reply)
Headers = Sequence[tuple[bytes, bytes]]
# One request to `url`, connecting to `address` (None: to the URL's host by name).
SendOnce = Callable[[httpx.URL, Headers, str | None], Awaitable[R]]


def not_public_because(address: IPAddress) -> str | None:
    """Why `address` is not a public one, or None when it is."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        # On the wire an IPv4-mapped (or 6to4, NAT64) address reaches the IPv4 address inside it.
        return not_public_because(embedded)
    checks = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (isinstance(address, ipaddress.IPv4Address) and address in _SHARED_ADDRESS_SPACE, "shared address space"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
        (isinstance(address, ipaddress.IPv6Address) and address.is_site_local, "site-local"),
        (not address.is_global, "not globally routable"),
    )
    for failed, reason in checks:
        if failed:
            return reason
    return None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def safe_url(url: httpx.URL) -> str:
    """`scheme://host:port/path` of `url`: no credentials, no query (a signed URL's signature is in it)."""
    return f"{url.scheme}://{_host_for_url(url.host)}:{effective_port(url)}{url.path}"


def effective_port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


def origin(url: httpx.URL) -> tuple[str, str, int]:
    return url.scheme, url.host, effective_port(url)


def pinned(url: httpx.URL, address: str | None) -> httpx.URL:
    """`url` with its host replaced by the checked `address` (the name goes in Host and SNI instead)."""
    return url if address is None else url.copy_with(host=address)


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True, slots=True)
class RedirectPolicy:
    """The redirects one registry may send the mirror on (see the module's docstring)."""

    # Which registry, for the log; and its configured URL, the origin always allowed.
    registry: str
    registry_url: str
    networks: tuple[IPNetwork, ...] = ()
    # Resolving a redirect's host name takes at most this long.
    resolve_timeout: float = 5.0
    resolve: Resolver = _getaddrinfo

    async def check(self, target: httpx.URL) -> str | None:
        """The address to connect to for `target` (None: its own host by name, the registry's own origin);
        raises RedirectRefused when the redirect must not be followed."""
        where = safe_url(target) if target.scheme in ("http", "https") and target.host else "a non-HTTP URL"
        refused = f"refused a redirect to {where}"
        if target.scheme not in ("http", "https") or not target.host:
            raise RedirectRefused(refused)
        if origin(target) == origin(httpx.URL(self.registry_url)):
            return None
        try:
            async with asyncio.timeout(self.resolve_timeout):
                resolved = await self.resolve(target.host, effective_port(target))
        except TimeoutError:
            raise RedirectRefused(f"{refused}: resolving its host took over {self.resolve_timeout:g}s") from None
        except OSError as exc:
            raise RedirectRefused(f"{refused}: cannot resolve its host ({exc.strerror or exc})") from None
        if not resolved:
            raise RedirectRefused(f"{refused}: its host has no address")
        for text in resolved:
            reason = self._refusal(text)
            if reason is not None:
                raise RedirectRefused(f"{refused}: {reason}")
        return resolved[0]

    def _refusal(self, text: str) -> str | None:
        """Why the mirror does not connect to the address `text`, or None when it may."""
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return f"{text!r} is not an address"
        candidates = [address]
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            candidates.append(embedded)
        if any(candidate in network for candidate in candidates for network in self.networks):
            return None
        reason = not_public_because(address)
        if reason is None:
            return None
        return f"{address} is {reason} and not in the registry's redirect_networks"

    async def follow(self, url: httpx.URL, headers: Headers, send_once: SendOnce[R]) -> R:
        """`send_once` to `url`, then to where each allowed redirect leads, up to MAX_REDIRECTS of them.

        `Authorization` is dropped once a redirect leaves the origin of the hop before it (as httpx does): object
        storage must not see the registry's credentials. A refusal is logged here, once."""
        try:
            return await self._follow(url, headers, send_once)
        except RedirectRefused as exc:
            logger.warning("%s: %s", self.registry, exc)
            raise

    async def _follow(self, url: httpx.URL, headers: Headers, send_once: SendOnce[R]) -> R:
        address: str | None = None
        for _ in range(MAX_REDIRECTS + 1):
            response = await send_once(url, headers, address)
            location = response.headers.get("location")
            if response.status_code not in REDIRECT_STATUSES or not location:
                return response
            await response.aclose()
            try:
                following = url.join(location)
            except httpx.InvalidURL:
                raise RedirectRefused(f"refused a redirect to an invalid URL from {safe_url(url)}") from None
            address = await self.check(following)
            if origin(following) != origin(url):
                headers = [(name, value) for name, value in headers if name.lower() != b"authorization"]
            url = following
        raise RedirectRefused(f"more than {MAX_REDIRECTS} redirects, the last to {safe_url(url)}")
