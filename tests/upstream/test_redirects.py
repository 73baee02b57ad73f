"""The redirect policy: which addresses count as public, which targets a registry's redirects may lead to, and that
a refusal names the target without its query or credentials."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re

import httpx
import pytest

from upstream.client import RegistryClient, UpstreamError
from upstream.config import UpstreamConfig
from upstream.redirects import RedirectPolicy, RedirectRefused, Resolver, not_public_because, safe_url
from upstream.registry import UpstreamRegistry

REGISTRY = "https://registry.example.test"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # the cloud metadata service
        ("fe80::1", "link-local"),
        ("100.64.0.1", "shared address space"),
        ("100.127.255.254", "shared address space"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "private"),  # reserved, and listed as private by the stdlib
        ("fd00::1", "private"),
        ("192.0.2.1", "private"),  # documentation
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped: reaches 127.0.0.1
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:100.64.0.1", "shared address space"),
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::", "loopback"),  # 6to4 around 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
        ("::127.0.0.1", "reserved"),  # IPv4-compatible (deprecated)
    ],
)
def test_internal_addresses_are_not_public(address: str, reason: str) -> None:
    assert not_public_because(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.1", "2606:4700::1111",
                                     "::ffff:8.8.8.8", "2002:808:808::"])
def test_public_addresses_are_public(address: str) -> None:
    assert not_public_because(ipaddress.ip_address(address)) is None


def resolver(*addresses: str) -> Resolver:
    """A resolver that answers `addresses` for any name (the names here are fictional)."""

    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


async def test_the_registrys_own_origin_is_followed_by_name() -> None:
    policy = RedirectPolicy("r", "http://127.0.0.1:5000", resolve=resolver("10.0.0.1"))
    assert await policy.check(httpx.URL("http://127.0.0.1:5000/elsewhere?x=1")) is None
    with pytest.raises(RedirectRefused, match=re.escape("127.0.0.1 is loopback")):
        await RedirectPolicy("r", "http://127.0.0.1:5000").check(httpx.URL("http://127.0.0.1:5001/other-port"))
    with pytest.raises(RedirectRefused):
        await RedirectPolicy("r", "http://127.0.0.1:5000").check(httpx.URL("https://127.0.0.1:5000/other-scheme"))
    # Default ports are the same port whether written or not.
    own = RedirectPolicy("r", "https://registry.example.test", resolve=resolver("127.0.0.1"))
    assert await own.check(httpx.URL("https://REGISTRY.example.test:443/v2/x")) is None


async def test_a_host_is_followed_only_when_every_address_is_allowed() -> None:
    public = RedirectPolicy("r", REGISTRY, resolve=resolver("8.8.8.8", "2606:4700::1111"))
    assert await public.check(httpx.URL("https://storage.example.test/b")) == "8.8.8.8"
    mixed = RedirectPolicy("r", REGISTRY, resolve=resolver("8.8.8.8", "169.254.169.254"))
    with pytest.raises(RedirectRefused, match=re.escape("169.254.169.254 is link-local")):
        await mixed.check(httpx.URL("https://storage.example.test/b"))
    networks = (ipaddress.ip_network("10.20.0.0/16"),)
    private = RedirectPolicy("r", REGISTRY, networks, resolve=resolver("10.20.3.4", "::ffff:10.20.3.5"))
    assert await private.check(httpx.URL("http://storage.internal:9000/b")) == "10.20.3.4"
    outside = RedirectPolicy("r", REGISTRY, networks, resolve=resolver("10.21.0.1"))
    refusal = "10.21.0.1 is private and not in the registry's redirect_networks"
    with pytest.raises(RedirectRefused, match=re.escape(refusal)):
        await outside.check(httpx.URL("http://storage.internal:9000/b"))


async def test_names_are_resolved_for_real_and_odd_targets_refused() -> None:
    policy = RedirectPolicy("r", REGISTRY)
    # localhost resolves through the system's resolver to loopback.
    with pytest.raises(RedirectRefused, match="is loopback"):
        await policy.check(httpx.URL("http://localhost:8080/x"))
    with pytest.raises(RedirectRefused, match="cannot resolve"):
        await policy.check(httpx.URL("http://no-such-host.invalid/x"))
    with pytest.raises(RedirectRefused):
        await policy.check(httpx.URL("ftp://8.8.8.8/x"))

    async def slow(host: str, port: int) -> list[str]:
        await asyncio.sleep(5)
        return ["8.8.8.8"]

    with pytest.raises(RedirectRefused, match=re.escape("took over 0.1s")):
        await RedirectPolicy("r", REGISTRY, resolve_timeout=0.1, resolve=slow).check(httpx.URL("http://s.test/x"))


def test_the_logged_target_has_no_query_and_no_credentials() -> None:
    url = httpx.URL("https://user:pass@storage.example.test/bucket/blob?X-Amz-Signature=secret")
    assert safe_url(url) == "https://storage.example.test:443/bucket/blob"
    assert safe_url(httpx.URL("http://[::1]:81/a?b")) == "http://[::1]:81/a"


async def test_a_refused_redirect_is_logged_once_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    class Redirect:
        status_code = 307
        headers = httpx.Headers({"location": "http://169.254.169.254/latest?token=secret"})

        async def aclose(self) -> None:
            pass

    sent: list[str] = []

    async def send_once(url: httpx.URL, headers: object, address: str | None) -> Redirect:
        sent.append(str(url))
        return Redirect()

    policy = RedirectPolicy("registry.example.test", REGISTRY)
    with caplog.at_level(logging.WARNING, logger="upstream.redirects"), pytest.raises(RedirectRefused):
        await policy.follow(httpx.URL(REGISTRY + "/v2/x/blobs/d"), [], send_once)
    assert sent == [REGISTRY + "/v2/x/blobs/d"]
    records = [r for r in caplog.records if r.name == "upstream.redirects"]
    assert len(records) == 1 and records[0].levelno == logging.WARNING
    message = records[0].getMessage()
    assert "http://169.254.169.254:80/latest" in message and "secret" not in message


async def test_the_registry_client_connects_to_the_checked_address_with_the_name_as_host() -> None:
    # httpx's path (manifests, access checks): a redirect to a name only the policy's resolver knows reaches the
    # storage at all only if the checked address is what httpx dials; the name stays in Host.
    heads: list[bytes] = []

    async def storage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    storage_server = await asyncio.start_server(storage, "127.0.0.1", 0)
    storage_port = storage_server.sockets[0].getsockname()[1]

    async def registry(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        location = b"http://storage.invalid:%d/object?sig=1" % storage_port
        writer.write(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n"
                     b"Connection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    registry_server = await asyncio.start_server(registry, "127.0.0.1", 0)
    registry_url = f"http://127.0.0.1:{registry_server.sockets[0].getsockname()[1]}"
    config = UpstreamConfig(attempts=1)
    async with storage_server, registry_server, httpx.AsyncClient(trust_env=False) as http:
        client = RegistryClient(UpstreamRegistry("r", registry_url), http, config)
        client.redirects = RedirectPolicy(
            "r", registry_url, (ipaddress.ip_network("127.0.0.1/32"),), resolve=resolver("127.0.0.1")
        )
        response = await client.send("GET", "/v2/x/manifests/v1", client_auth="Bearer secret")
        assert (response.status_code, response.content) == (200, b"ok")
        # Without the storage's network the same redirect is an UpstreamError, and the storage sees nothing more.
        client.redirects = RedirectPolicy("r", registry_url, resolve=resolver("127.0.0.1"))
        with pytest.raises(UpstreamError, match=re.escape("refused a redirect to http://storage.invalid")):
            await client.send("GET", "/v2/x/manifests/v1", client_auth=None)
    assert len(heads) == 1
    assert b"\r\nhost: storage.invalid:%d\r\n" % storage_port in heads[0].lower()
    assert b"authorization" not in heads[0].lower()  # the registry's credentials stay with the registry
