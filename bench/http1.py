"""A lean HTTP/1.1 client for generating load: keep-alive connections, one request in flight on each.

The supernode's load benchmark needs one generator process to outrun the server it measures, on a machine with
two cores. With 64 heartbeats in flight on one httpx client, httpx spent 2.8 ms of CPU per request (its pool, h11
and the request models) where the supernode spent 0.2 ms answering: the generator would have measured itself. This
client (0.04 ms per request) writes the request bytes and parses only what a small JSON API answers with: a status
line, `content-length`, a body (and none for 204).
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Mapping
from typing import cast


class HttpError(ConnectionError):
    """The connection broke, or the answer is not something this client parses."""


class Connection(asyncio.Protocol):
    """One keep-alive connection; the caller awaits one response at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._waiter is not None and not self._waiter.done():
            self._parse()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(HttpError(f"connection lost: {exc!r}"))

    def send(self, request: bytes) -> asyncio.Future[tuple[int, bytes]]:
        if self.closed or self.transport is None:
            raise HttpError("connection closed")
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self._waiter

    def close(self) -> None:
        if self.transport is not None:
            sock = self.transport.get_extra_info("socket")
            if sock is not None and not self.closed:
                # Reset rather than close: a run opens thousands of connections, and each closed one would hold
                # its port in TIME_WAIT for a minute; a few runs in a row would run out of local ports.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.transport.close()
        self.closed = True

    def _parse(self) -> None:
        assert self._waiter is not None
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self._buffer[:end]).lower()
        try:
            status = int(head[9:12])
            length = 0
            if status != 204 and status != 304:
                start = head.find(b"\r\ncontent-length:")
                if start < 0:
                    raise ValueError("no content-length")
                stop = head.find(b"\r\n", start + 2)
                length = int(head[start + 17 : stop if stop >= 0 else None])
        except ValueError as exc:
            self._waiter.set_exception(HttpError(f"unparsed response head {head[:200]!r}: {exc}"))
            self.close()
            return
        total = end + 4 + length
        if len(self._buffer) < total:
            return
        body = bytes(self._buffer[end + 4 : total])
        del self._buffer[:total]
        self._waiter.set_result((status, body))


class Client:
    """A host's connections to one server: an idle one is reused, a new one opened when all are busy.

    This is how a peer's httpx client behaves towards the supernode (a long-poll holds its connection while other
    requests go out on others), at a fraction of the CPU.
    """

    def __init__(self, host: str, port: int, headers: Mapping[str, str] | None = None) -> None:
        self.host = host
        self.port = port
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        self._fixed = f"Host: {host}:{port}\r\n{extra}".encode()
        self._idle: list[Connection] = []
        # Connections with a request in flight (a long-poll), so that `close` resets them too.
        self._busy: set[Connection] = set()
        self.opened = 0

    async def request(
        self, method: str, path: str, body: bytes | None = None, headers: bytes = b""
    ) -> tuple[int, bytes]:
        """(status, body) of one request; raises HttpError if the connection breaks.

        `headers`: header lines of this request alone, each ending in CRLF, made once by the caller (a simulated
        host's credential), so that sending them costs a concatenation.
        """
        conn = await self._connection()
        head = f"{method} {path} HTTP/1.1\r\n".encode() + self._fixed + headers
        if body is not None:
            head += b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
            request = head + body
        else:
            request = head + b"\r\n"
        self._busy.add(conn)
        try:
            answer = await conn.send(request)
        except BaseException:
            # A request cut short (an error, or a cancelled long-poll) leaves the connection mid-response.
            conn.close()
            raise
        finally:
            self._busy.discard(conn)
        if not conn.closed:
            self._idle.append(conn)
        return answer

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
        for conn in self._busy:
            conn.close()
        self._busy.clear()

    async def _connection(self) -> Connection:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(Connection, self.host, self.port)
        except OSError as exc:
            raise HttpError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        self.opened += 1
        return conn
