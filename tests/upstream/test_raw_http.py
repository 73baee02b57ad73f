"""The lean blob-body client: bodies land in the caller's buffers exactly, and every way a server can misbehave
ends in `RawHttpError` (or an unusable, unframed response), never in wrong bytes, a hang or a stray buffer write.

The servers are real sockets on loopback, answering with bytes written out by hand.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from upstream.raw_http import RawHttpClient, RawHttpError
from upstream.redirects import RedirectPolicy, RedirectRefused

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
BODY = hashlib.sha256(b"body").digest() * 40_000  # 1.28 MB


async def serve(handler: Handler) -> tuple[asyncio.Server, str]:
    async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The client may hang up first (that is what several tests provoke): the socket is closed either way.
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(closing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def client(read_timeout: float = 5.0) -> RawHttpClient:
    return RawHttpClient(ssl_context=None, connect_timeout=2.0, read_timeout=read_timeout)


def policy(registry_url: str, *networks: str) -> RedirectPolicy:
    """The redirect policy of a registry at `registry_url` that may also redirect into `networks`."""
    return RedirectPolicy("r", registry_url, tuple(ipaddress.ip_network(n) for n in networks))


async def fill_all(response_fill: Callable[[memoryview], Awaitable[int]], size: int, step: int) -> bytes:
    out = bytearray(size)
    view = memoryview(out)
    got = 0
    while got < size:
        n = await response_fill(view[got : got + step])
        assert n > 0
        got += n
    return bytes(out)


@pytest.fixture
async def body_server() -> AsyncIterator[tuple[str, list[bytes]]]:
    heads: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await read_head(reader))
        # Head and the first body bytes in one write, the rest in uneven chunks.
        writer.write(b"HTTP/1.1 206 Partial Content\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY[:1000])
        for at in range(1000, len(BODY), 70_001):
            writer.write(BODY[at : at + 70_001])
            await writer.drain()
        writer.close()

    server, url = await serve(handler)
    async with server:
        yield url, heads


async def test_the_body_lands_in_the_callers_buffers_exactly(body_server: tuple[str, list[bytes]]) -> None:
    url, heads = body_server
    response = await client().get(url + "/v2/x/blobs/d", [(b"Range", b"bytes=0-9")])
    assert response.status_code == 206 and response.framed
    seen: list[int] = []
    piece = memoryview(bytearray(400_000))
    first = await response.fill(piece, seen.append)
    assert first == len(piece) and bytes(piece) == BODY[:400_000]
    assert seen and seen[-1] == len(piece)  # progress told how much had arrived
    rest = await fill_all(response.fill, len(BODY) - 400_000, 300_000)
    assert rest == BODY[400_000:]
    # The body is over: a further fill gets nothing, and raises nothing.
    assert await response.fill(memoryview(bytearray(10))) == 0
    await response.aclose()
    assert b"Range: bytes=0-9" in heads[0] and b"Connection: close" in heads[0]


async def test_a_body_cut_off_mid_way_is_an_error_not_a_short_piece() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 5000)
        await writer.drain()
        writer.transport.abort()

    server, url = await serve(handler)
    async with server:
        response = await client().get(url + "/b", [])
        with pytest.raises(RawHttpError, match="mid-body"):
            await response.fill(memoryview(bytearray(1_000_000)))
        await response.aclose()


async def test_a_server_that_stalls_times_out() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
        await asyncio.sleep(5)
        writer.close()

    server, url = await serve(handler)
    async with server:
        response = await client(read_timeout=0.3).get(url + "/b", [])
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(RawHttpError, match="no data"):
            await response.fill(memoryview(bytearray(100)))
        assert loop.time() - started < 2.0
        await response.aclose()


async def test_a_chunked_body_is_left_to_httpx() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        writer.close()

    server, url = await serve(handler)
    async with server:
        response = await client().get(url + "/b", [])
        assert response.status_code == 200 and not response.framed
        with pytest.raises(RawHttpError):
            await response.fill(memoryview(bytearray(3)))
        await response.aclose()


async def test_redirects_are_followed_and_credentials_stay_with_their_origin() -> None:
    seen: dict[str, bytes] = {}

    async def storage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen["storage"] = await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        writer.close()

    storage_server, storage_url = await serve(storage)

    async def registry(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        if b"/v2/" in head:
            seen["registry"] = head
            writer.write(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /same-origin\r\nContent-Length: 0\r\n\r\n")
        else:
            seen["same-origin"] = head
            location = storage_url.encode() + b"/object?sig=1"
            writer.write(b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n")
        writer.close()

    registry_server, registry_url = await serve(registry)
    async with storage_server, registry_server:
        response = await client().get(
            registry_url + "/v2/x/blobs/d", [(b"Authorization", b"Bearer secret")],
            redirects=policy(registry_url, "127.0.0.0/8"),  # the storage is another loopback port
        )
        assert response.status_code == 200
        assert await response.fill(memoryview(bytearray(5))) == 5
        await response.aclose()
    assert b"Authorization: Bearer secret" in seen["registry"]
    assert b"Authorization: Bearer secret" in seen["same-origin"]  # same origin keeps them
    assert b"Authorization" not in seen["storage"]  # object storage never sees the registry's credentials
    assert seen["storage"].startswith(b"GET /object?sig=1 HTTP/1.1")


async def test_endless_redirects_and_garbage_are_errors() -> None:
    async def loop_forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n")
        writer.close()

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        writer.close()

    async def huge_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"a" * 100_000)
        await writer.drain()
        writer.close()

    server, url = await serve(loop_forever)
    async with server:
        with pytest.raises(RedirectRefused, match="more than 5 redirects"):
            await client().get(url + "/b", [], redirects=policy(url))
    for handler, message in ((garbage, "not an HTTP"), (huge_head, "too large")):
        server, url = await serve(handler)
        async with server:
            with pytest.raises(RawHttpError, match=message):
                await client().get(url + "/b", [])


async def test_a_redirect_the_policy_refuses_is_never_followed() -> None:
    heads: list[bytes] = []

    async def internal(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await read_head(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\ninternal")
        writer.close()

    internal_server, internal_url = await serve(internal)

    async def registry(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        location = internal_url.encode() + b"/latest/meta-data?token=secret"
        writer.write(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n")
        writer.close()

    registry_server, registry_url = await serve(registry)
    async with internal_server, registry_server:
        with pytest.raises(RedirectRefused, match=re.escape("127.0.0.1 is loopback")) as refused:
            await client().get(registry_url + "/v2/x/blobs/d", [], redirects=policy(registry_url))
        # Without a policy (a peer's piece fetch) the redirect is the answer, not followed either.
        unfollowed = await client().get(registry_url + "/v2/x/blobs/d", [])
        assert unfollowed.status_code == 307
        await unfollowed.aclose()
    assert heads == []
    assert "/latest/meta-data" in str(refused.value) and "secret" not in str(refused.value)


async def test_a_redirect_connects_to_the_address_checked_with_the_name_as_host() -> None:
    heads: list[bytes] = []

    async def storage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await read_head(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        writer.close()

    storage_server, storage_url = await serve(storage)
    storage_port = int(storage_url.rpartition(":")[2])
    resolved: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        # A name no resolver knows: reaching the storage at all proves the checked address was dialled.
        resolved.append(f"{host}:{port}")
        return ["127.0.0.1"]

    async def registry(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        location = b"http://storage.invalid:%d/object" % storage_port
        writer.write(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n")
        writer.close()

    registry_server, registry_url = await serve(registry)
    networks = (ipaddress.ip_network("127.0.0.1/32"),)
    async with storage_server, registry_server:
        rules = RedirectPolicy("r", registry_url, networks, resolve=resolve)
        response = await client().get(registry_url + "/v2/x/blobs/d", [], redirects=rules)
        assert response.status_code == 200
        await response.aclose()
    assert resolved == [f"storage.invalid:{storage_port}"]
    assert heads and b"\r\nHost: storage.invalid:%d\r\n" % storage_port in heads[0]


async def test_nobody_listening_is_an_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(RawHttpError, match="cannot connect"):
            await client().get(f"http://127.0.0.1:{port}/b", [])


async def test_header_injection_is_refused() -> None:
    with pytest.raises(RawHttpError, match="line break"):
        await client().get("http://127.0.0.1:9/b", [(b"Authorization", b"x\r\nHost: evil")])


async def test_the_response_head_has_its_own_timeout() -> None:
    # A parent holds a piece request until it has the piece: the head may take longer than a body may pause,
    # but not for ever.
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await asyncio.sleep(3)

    server, url = await serve(silent)
    async with server:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(RawHttpError, match="no response"):
            await client(read_timeout=30.0).get(url + "/b", [], head_timeout=0.3)
        assert loop.time() - started < 2.0
