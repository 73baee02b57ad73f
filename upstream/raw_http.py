"""A lean HTTP/1.1 GET for blob bodies: the body is received straight into the caller's buffers.

httpx (through httpcore and h11) copies every received chunk several times in Python; at loopback speed that
was the largest share of a source's event loop (docs/benchmarks.md). This client does one job: send a GET,
follow the redirects its caller's policy allows (`upstream.redirects`), parse the response head, and let the
socket (or the TLS layer) write the body directly into the buffer given to `fill` (an `asyncio.BufferedProtocol`),
one piece at a time. Between fills the socket is not read, so a slow consumer pushes back on the sender through
TCP and memory stays bounded.

It is deliberately narrow: one connection per request (`Connection: close`), bodies framed by Content-Length
only. Callers (`upstream.client`) keep httpx for everything else: a chunked body is handed back as unusable.
The peer fetches pieces from other peers through it too (`peer/piece_client.py`).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Sequence

import httpx

from .redirects import RedirectPolicy

# A registry's response head is a few hundred bytes; a head this large is not a registry talking.
HEAD_LIMIT = 64 * 1024
# Received while no buffer was offered (at most one read's worth: reading pauses at once).
SPARE_SIZE = 256 * 1024

Progress = Callable[[int], None]


class RawHttpError(Exception):
    """The connection failed, timed out, or the peer did not speak HTTP/1.1 as expected."""


class _ResponseProtocol(asyncio.BufferedProtocol):
    """Receives the head into a small buffer, then the body into whatever buffer `fill` offers."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self.head: asyncio.Future[bytes] = loop.create_future()
        self._head = bytearray(HEAD_LIMIT)
        self._head_length = 0
        self._in_body = False
        # Body bytes received beyond the head, or while no buffer was offered: handed out first by `fill`.
        self.overflow = bytearray()
        self._spare = bytearray(SPARE_SIZE)
        # Body bytes still to come from the socket; -1 until the head tells the length.
        self.remaining = -1
        self._target: memoryview | None = None
        self._into_target = False
        self.filled = 0
        self._progress: Progress | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.last_activity = loop.time()
        self.ended = False
        self.error: BaseException | None = None

    # --- asyncio callbacks -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        if not self._in_body:
            return memoryview(self._head)[self._head_length :]
        target = self._target
        if target is not None:
            room = len(target) - self.filled
            if self.remaining >= 0:
                room = min(room, self.remaining)  # never read past the body into the caller's buffer
            if room > 0:
                self._into_target = True
                return target[self.filled : self.filled + room]
        self._into_target = False
        return memoryview(self._spare)

    def buffer_updated(self, nbytes: int) -> None:
        self.last_activity = self._loop.time()
        if not self._in_body:
            self._head_updated(nbytes)
        elif self._into_target:
            self.filled += nbytes
            self.remaining -= nbytes
            if self._progress is not None:
                self._progress(self.filled)
            assert self._target is not None
            if self.filled == len(self._target) or self.remaining == 0:
                self._wake()
        else:
            self.overflow += memoryview(self._spare)[:nbytes]
            self._pause()

    def eof_received(self) -> bool | None:
        self.ended = True
        self._wake()
        return None  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        if exc is not None:
            self.error = exc
        if not self.head.done():
            self.head.set_exception(RawHttpError(f"connection closed before the response head: {exc!r}"))
        self._wake()

    # --- the head ----------------------------------------------------------------------------------

    def _head_updated(self, nbytes: int) -> None:
        scan_from = max(0, self._head_length - 3)
        self._head_length += nbytes
        end = self._head.find(b"\r\n\r\n", scan_from, self._head_length)
        if end < 0:
            if self._head_length == len(self._head) and not self.head.done():
                self.head.set_exception(RawHttpError("response head too large"))
                self.close()
            return
        self._in_body = True
        self.overflow += memoryview(self._head)[end + 4 : self._head_length]
        self._pause()
        if not self.head.done():
            self.head.set_result(bytes(self._head[:end]))

    # --- the body ----------------------------------------------------------------------------------

    async def fill(self, view: memoryview, progress: Progress | None, read_timeout: float) -> int:
        """Fill `view` from the body; fewer bytes only where the body (or the connection) ended."""
        copied = min(len(view), len(self.overflow))
        if copied:
            view[:copied] = memoryview(self.overflow)[:copied]
            del self.overflow[:copied]
        if copied == len(view) or self.remaining == 0 or self.ended:
            return copied
        self._target, self.filled, self._progress = view, copied, progress
        waiter = self._waiter = self._loop.create_future()
        assert self.transport is not None
        self.transport.resume_reading()
        try:
            while not waiter.done():
                left = self.last_activity + read_timeout - self._loop.time()
                if left <= 0:
                    raise RawHttpError(f"no data for {read_timeout:.0f}s")
                # One wait per piece, not per receive: buffer_updated wakes this only when the view is full.
                await asyncio.wait([waiter], timeout=left)
            return self.filled
        finally:
            self._target, self._progress, self._waiter = None, None, None
            self._pause()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._target = None  # nothing more lands in the caller's buffer once `fill` was woken
        self._pause()

    def _pause(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class RawResponse:
    """A response whose head has arrived; the body is read with `fill`. Close it when done."""

    def __init__(self, protocol: _ResponseProtocol, status_code: int, headers: httpx.Headers, read_timeout: float):
        self._protocol = protocol
        self.status_code = status_code
        self.headers = headers
        self.read_timeout = read_timeout
        length = headers.get("content-length", "")
        self.content_length = int(length) if length.isdigit() else None
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        # Usable here only when Content-Length frames the body; httpx takes anything else.
        self.framed = self.content_length is not None and not chunked
        if self.content_length is not None:
            del protocol.overflow[self.content_length :]  # whatever follows the body is not ours
            protocol.remaining = self.content_length - len(protocol.overflow)

    async def fill(self, view: memoryview, progress: Progress | None = None) -> int:
        if not self.framed:
            raise RawHttpError("the body is not framed by Content-Length")
        filled = await self._protocol.fill(view, progress, self.read_timeout)
        if filled < len(view) and self._protocol.remaining > 0:
            raise RawHttpError(f"connection ended mid-body: {self._protocol.error!r}")
        return filled

    async def aclose(self) -> None:
        self._protocol.close()


class RawHttpClient:
    """GETs with bodies received into the caller's buffers; `ssl_context` is used for https URLs."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None, connect_timeout: float, read_timeout: float) -> None:
        self.ssl_context = ssl_context
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout

    async def get(
        self,
        url: str,
        headers: Sequence[tuple[bytes, bytes]],
        *,
        head_timeout: float | None = None,
        redirects: RedirectPolicy | None = None,
    ) -> RawResponse:
        """GET `url`. Redirects are followed where `redirects` allows them (`upstream.redirects`: the checked
        address is connected to, `Authorization` dropped once a redirect leaves the origin); without a policy a
        redirect is the answer (peers never redirect). The response head must come within `head_timeout`
        (default: the read timeout); the body then may pause for at most the read timeout."""
        timeout = head_timeout or self.read_timeout

        async def once(target: httpx.URL, sent: Sequence[tuple[bytes, bytes]], address: str | None) -> RawResponse:
            return await self._get_once(target, sent, timeout, address)

        if redirects is None:
            return await once(httpx.URL(url), headers, None)
        return await redirects.follow(httpx.URL(url), headers, once)

    async def _get_once(
        self, url: httpx.URL, headers: Sequence[tuple[bytes, bytes]], head_timeout: float, address: str | None = None
    ) -> RawResponse:
        """One GET; connects to `address` when given (a redirect target's checked address), else to the URL's host.
        The Host header and TLS's server name stay the URL's host either way."""
        if url.scheme not in ("http", "https"):
            raise RawHttpError(f"cannot fetch {url.scheme!r} URLs")
        https = url.scheme == "https"
        if https and self.ssl_context is None:
            raise RawHttpError("https URL but no TLS settings")
        request = _request_head(url, headers)
        loop = asyncio.get_running_loop()
        protocol = _ResponseProtocol(loop)
        host = url.host
        port = url.port or (443 if https else 80)
        try:
            async with asyncio.timeout(self.connect_timeout):
                await loop.create_connection(
                    lambda: protocol,
                    address or host,
                    port,
                    ssl=self.ssl_context if https else None,
                    server_hostname=host if https else None,
                )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise RawHttpError(f"cannot connect to {host}:{port}: {exc!r}") from exc
        try:
            assert protocol.transport is not None
            protocol.transport.write(request)
            try:
                async with asyncio.timeout(head_timeout):
                    head = await protocol.head
            except TimeoutError as exc:
                raise RawHttpError(f"no response from {host}:{port} in {head_timeout:.0f}s") from exc
            status, response_headers = _parse_head(head)
        except BaseException:
            protocol.close()
            raise
        return RawResponse(protocol, status, response_headers, self.read_timeout)


def _request_head(url: httpx.URL, headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    lines = [
        b"GET " + url.raw_path + b" HTTP/1.1",
        b"Host: " + url.netloc,
        b"User-Agent: damselfly",
        b"Accept-Encoding: identity",
        b"Connection: close",
    ]
    for name, value in headers:
        if b"\r" in value or b"\n" in value or b"\r" in name or b"\n" in name:
            raise RawHttpError("header with a line break")
        lines.append(name + b": " + value)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _parse_head(head: bytes) -> tuple[int, httpx.Headers]:
    status_line, _, rest = head.partition(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise RawHttpError(f"not an HTTP/1.1 response: {status_line[:80]!r}")
    fields = []
    for line in rest.split(b"\r\n") if rest else []:
        name, sep, value = line.partition(b":")
        if not sep or not name.strip():
            raise RawHttpError(f"malformed response header: {line[:80]!r}")
        fields.append((name.strip().decode("latin-1"), value.strip().decode("latin-1")))
    return int(parts[1]), httpx.Headers(fields)
