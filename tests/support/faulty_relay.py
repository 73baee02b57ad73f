"""An HTTP relay with switchable faults, put in front of a real upstream registry.

    with FaultyRelay(registry.url) as relay:
        relay.rate = 16 * MiB                                   # the upstream's "link", bytes/s, shared
        relay.add_fault(Fault("reset", method="GET", path="/blobs/", after_bytes=5 * MiB, times=3))
        relay.add_fault(Fault("status", status=503, path="/blobs/", times=2))
        cluster = DamselflyCluster(..., upstream_url=relay.url)
        ...
        relay.records()                                         # what came through, and what was done to it

Faults, matched in the order they were added against each request's method and path (a regular expression,
searched); each applies `times` times (-1: until removed):

- ``status``: answer `status` (503, 500, 429, ...) with an OCI error body and `headers`, without asking the
  upstream;
- ``reset``: relay the upstream's answer, then after `after_bytes` bytes of its body reset the client's TCP
  connection (RST, as a crashed middlebox or a dropped NAT entry would); `after_bytes=0` resets right after the
  request, before any answer. The reset comes `hold` seconds after the last byte: an RST makes the receiver's
  kernel drop whatever it has not yet read, so without the pause how much of the body survives would depend on
  how busy the machine is, and tests could not tell what a resume should start from.

The relay speaks HTTP/1.1 one request per connection (it rewrites `Connection: close` both ways), which is
all a registry client needs and keeps the framing trivially right. It runs its own event loop in a thread so
that tests driving daemons synchronously can use it; the fault list and rate are guarded by a lock.
Traffic goes to the configured upstream only, which must be on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal
from urllib.parse import urlsplit

IO_TIMEOUT = 30.0
CHUNK = 64 * 1024
MAX_HEAD = 64 * 1024

FaultKind = Literal["status", "reset"]
_REASONS = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
_CODES = {429: "TOOMANYREQUESTS", 503: "UNAVAILABLE"}


@dataclass
class Fault:
    kind: FaultKind
    method: str | None = None
    path: str = ""
    times: int = 1
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    after_bytes: int = 0
    hold: float = 0.5

    def matches(self, method: str, path: str) -> bool:
        if self.times == 0:
            return False
        if self.method is not None and method != self.method:
            return False
        return re.search(self.path, path) is not None


@dataclass
class RelayRecord:
    """One request that came through the relay."""

    method: str
    path: str
    range: str | None
    started: float
    fault: str = ""
    status: int = 0
    body_bytes: int = 0
    complete: bool = False


class FaultyRelay:
    def __init__(self, upstream_url: str, *, rate: float = 0.0) -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost") or parts.port is None:
            raise ValueError(f"the relay only fronts a plain-http loopback upstream, not {upstream_url!r}")
        self.upstream_host = "127.0.0.1"
        self.upstream_port = parts.port
        # Bytes per second over all connections together, 0 for no limit.
        self.rate = rate
        self.port = 0
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._records: list[RelayRecord] = []
        self._link_free_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- control (any thread) -------------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def records(self) -> list[RelayRecord]:
        with self._lock:
            return list(self._records)

    def reset_records(self) -> None:
        with self._lock:
            self._records.clear()

    def body_bytes(self, method: str = "GET", path_contains: str = "/blobs/") -> int:
        """Body bytes the relay passed on to its clients for matching requests (cut-off bodies included)."""
        return sum(r.body_bytes for r in self.records() if r.method == method and path_contains in r.path)

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> FaultyRelay:
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                server = asyncio.start_server(self._handle, "127.0.0.1", 0, limit=MAX_HEAD)
                self._server = loop.run_until_complete(server)
                self.port = int(self._server.sockets[0].getsockname()[1])
            except BaseException as exc:
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._shutdown())
                loop.close()

        self._thread = threading.Thread(target=run, name="faulty-relay", daemon=True)
        self._thread.start()
        if not started.wait(10.0):
            raise RuntimeError("the relay did not start")
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(15.0)

    def __enter__(self) -> FaultyRelay:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(BaseException):
                await task

    # -- the relay (loop thread) --------------------------------------------------------------------

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    if fault.times > 0:
                        fault.times -= 1
                    return fault
        return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._relay_one(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _relay_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IO_TIMEOUT)
        request_line, headers = _parse_head(head)
        method, target, _ = request_line.split(" ", 2)
        path = urlsplit(target).path
        record = RelayRecord(method, path, _header(headers, "range"), time.monotonic())
        with self._lock:
            self._records.append(record)
        fault = self._take_fault(method, path)
        if fault is not None:
            record.fault = f"{fault.kind}:{fault.status if fault.kind == 'status' else fault.after_bytes}"
        if fault is not None and fault.kind == "status":
            await self._answer_status(writer, fault, record)
            return
        if fault is not None and fault.after_bytes == 0:
            _reset(writer)
            return
        up_reader, up_writer = await asyncio.wait_for(
            asyncio.open_connection(self.upstream_host, self.upstream_port), IO_TIMEOUT
        )
        try:
            kept = [(k, v) for k, v in headers if k.lower() not in ("connection", "keep-alive")]
            up_writer.write(_build_head(request_line, [*kept, ("Connection", "close")]))
            length = _header(headers, "content-length")
            if length is not None and length.isdigit():
                left = int(length)
                while left > 0:
                    chunk = await asyncio.wait_for(reader.read(min(CHUNK, left)), IO_TIMEOUT)
                    if not chunk:
                        return
                    up_writer.write(chunk)
                    left -= len(chunk)
            await up_writer.drain()
            response_head = await asyncio.wait_for(up_reader.readuntil(b"\r\n\r\n"), IO_TIMEOUT)
            status_line, response_headers = _parse_head(response_head)
            record.status = int(status_line.split(" ", 2)[1])
            kept = [(k, v) for k, v in response_headers if k.lower() not in ("connection", "keep-alive")]
            writer.write(_build_head(status_line, [*kept, ("Connection", "close")]))
            cut_at = fault.after_bytes if fault is not None else None
            while True:
                chunk = await asyncio.wait_for(up_reader.read(CHUNK), IO_TIMEOUT)
                if not chunk:
                    break
                if cut_at is not None and record.body_bytes + len(chunk) >= cut_at:
                    chunk = chunk[: cut_at - record.body_bytes]
                    writer.write(chunk)
                    record.body_bytes += len(chunk)
                    await writer.drain()
                    await asyncio.sleep(fault.hold if fault is not None else 0.0)
                    _reset(writer)
                    return
                await self._pace(len(chunk))
                writer.write(chunk)
                record.body_bytes += len(chunk)
                await asyncio.wait_for(writer.drain(), IO_TIMEOUT)
            record.complete = True
        finally:
            up_writer.close()
            with contextlib.suppress(Exception):
                await up_writer.wait_closed()

    async def _pace(self, length: int) -> None:
        """Hold a chunk back so that all connections together stay within `rate` bytes per second."""
        with self._lock:
            rate = self.rate
            if rate <= 0:
                return
            now = time.monotonic()
            self._link_free_at = max(now, self._link_free_at) + length / rate
            delay = self._link_free_at - now
        if delay > 0:
            await asyncio.sleep(delay)

    async def _answer_status(self, writer: asyncio.StreamWriter, fault: Fault, record: RelayRecord) -> None:
        code = _CODES.get(fault.status, "UNKNOWN")
        body = f'{{"errors":[{{"code":"{code}","message":"fault injected by the test relay"}}]}}'.encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        headers += list(fault.headers.items())
        headers.append(("Connection", "close"))
        writer.write(_build_head(f"HTTP/1.1 {fault.status} {_REASONS.get(fault.status, 'Error')}", headers) + body)
        record.status = fault.status
        await asyncio.wait_for(writer.drain(), IO_TIMEOUT)
        record.complete = True


def _parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return lines[0], headers


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _build_head(first_line: str, headers: list[tuple[str, str]]) -> bytes:
    return (first_line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode("latin-1")


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST instead of a FIN: the peer sees 'connection reset', not a clean end."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
