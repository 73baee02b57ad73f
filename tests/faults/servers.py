"""Real servers in a background thread of the test process, raw HTTP over a socket, and a guard on outbound traffic.

The bad-input tests are synchronous hypothesis tests; the servers under test run on their own event loop in a
thread (`LoopThread`), as uvicorn (the product's `make_server`) or as the raw asyncio upload server, on
127.0.0.1. Requests go over a real socket as raw bytes (`raw_request`), so malformed request lines, odd
percent-encodings and truncated bodies reach the real parsers. `OutboundGuard` records every request the
process's httpx clients try to send and refuses any to a host that is not allowed, so a test can assert that
nothing went anywhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from starlette.types import ASGIApp

from damselfly.serving import bind, make_server
from upstream.raw_http import RawHttpClient, RawHttpError
from upstream.raw_http import RawResponse as RawHttpResponse

T = TypeVar("T")
MAX_RESPONSE = 16 << 20
# Text that gives away a Python traceback in a response: its header line, or a frame ('File "x.py", line 3').
_TRACEBACK = re.compile(rb'Traceback \(most recent call last\)|File "[^"]+", line \d+')


class LoopThread:
    """An asyncio loop running in a daemon thread; `run` executes a coroutine on it and waits for the result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="server-loop", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10.0)
        if not self._thread.is_alive():
            self.loop.close()


@contextlib.contextmanager
def asgi_server(app: ASGIApp, cleanup: Callable[[], Awaitable[None]] | None = None) -> Iterator[int]:
    """Serve an ASGI app with the product's uvicorn settings on 127.0.0.1; yields the port.

    `cleanup` runs on the server's loop after it stopped (what the app uses, e.g. a PeerService, lives there).
    """
    thread = LoopThread()
    sock = bind("127.0.0.1", 0)
    port = int(sock.getsockname()[1])
    server = make_server(app)

    async def start() -> asyncio.Task[None]:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        for _ in range(1000):
            if server.started:
                return task
            await asyncio.sleep(0.01)
        raise RuntimeError("uvicorn did not start")

    task = thread.run(start())
    try:
        yield port
    finally:
        server.should_exit = True

        async def wait() -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10.0)
            if cleanup is not None:
                await cleanup()

        thread.run(wait())
        thread.stop()


@dataclass
class RawResponse:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    raw: bytes
    # False when the connection ended before the declared body did (a server that closes with request bytes
    # still unread makes the kernel send a reset, which can cut its own answer short).
    complete: bool = True

    def leaks(self) -> bool:
        """Whether the response carries traceback or exception text."""
        return _TRACEBACK.search(self.raw) is not None


def raw_request(port: int, data: bytes, *, timeout: float = 30.0, half_close: bool = True) -> RawResponse | None:
    """Send raw bytes to 127.0.0.1:port, read until the server closes; None if it answered nothing at all.

    With `half_close` the write side is shut after sending, which ends keep-alive connections after one answer.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # The server may answer and close before it has read everything (a body it does not want): not an error.
        with contextlib.suppress(OSError):
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        received = bytearray()
        with contextlib.suppress(ConnectionError):
            while len(received) < MAX_RESPONSE:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
    return parse_response(bytes(received))


def parse_response(raw: bytes) -> RawResponse | None:
    if not raw:
        return None
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, f"a response without the end of its head: {raw[:300]!r}"
    lines = head.decode("latin-1").split("\r\n")
    version, status, *reason = lines[0].split(" ", 2)
    assert version.startswith("HTTP/1."), lines[0]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length")
    complete = True
    if length is not None and length.isdigit():
        complete = len(body) >= int(length)
        body = body[: int(length)]
    return RawResponse(int(status), reason[0] if reason else "", headers, body, raw, complete)


@dataclass
class OutboundGuard:
    """Patches httpx's transports and the raw blob-body client in this process: records every request, refuses
    those to other hosts."""

    allowed: set[str]
    seen: list[str] = field(default_factory=list, repr=False)
    refused: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @contextlib.contextmanager
    def installed(self) -> Iterator[OutboundGuard]:
        original_async = httpx.AsyncHTTPTransport.handle_async_request
        original_sync = httpx.HTTPTransport.handle_request
        original_raw = RawHttpClient._get_once
        guard = self

        async def guarded_raw(
            client: RawHttpClient,
            url: httpx.URL,
            headers: Sequence[tuple[bytes, bytes]],
            head_timeout: float,
            address: str | None = None,
        ) -> RawHttpResponse:
            # Every connection of the raw client, redirects included, starts here.
            if not guard.allow("GET", url):
                raise RawHttpError(f"test guard: {url.netloc.decode()} is not an allowed host")
            return await original_raw(client, url, headers, head_timeout, address)

        async def guarded_async(transport: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
            guard.check(request)
            return await original_async(transport, request)

        def guarded_sync(transport: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
            guard.check(request)
            return original_sync(transport, request)

        httpx.AsyncHTTPTransport.handle_async_request = guarded_async  # type: ignore[method-assign,assignment]
        httpx.HTTPTransport.handle_request = guarded_sync  # type: ignore[method-assign,assignment]
        RawHttpClient._get_once = guarded_raw  # type: ignore[method-assign,assignment]
        try:
            yield self
        finally:
            httpx.AsyncHTTPTransport.handle_async_request = original_async  # type: ignore[method-assign]
            httpx.HTTPTransport.handle_request = original_sync  # type: ignore[method-assign]
            RawHttpClient._get_once = original_raw  # type: ignore[method-assign]

    def check(self, request: httpx.Request) -> None:
        if not self.allow(request.method, request.url):
            netloc = request.url.netloc.decode()
            raise httpx.ConnectError(f"test guard: {netloc} is not an allowed host", request=request)

    def allow(self, method: str, url: httpx.URL) -> bool:
        """Record the request; whether it may go out."""
        with self._lock:
            self.seen.append(f"{method} {url}")
            if url.netloc.decode() not in self.allowed:
                self.refused.append(f"{method} {url}")
                return False
            return True

