"""uvicorn's httptools protocol with the ASGI zero-copy send extension (`http.response.zerocopysend`).

uvicorn does not implement the extension. Without it every byte of a body goes through Python (read, hand to the
server, copy into the socket); with it the app hands over an open file and the kernel sends it (`os.sendfile`
through `loop.sendfile`): a warm blob leaves the registry mirror at the speed of the Go registry, at a fraction of
the CPU (docs/benchmarks.md, loopback figures: 0.13 CPU-seconds per GB warm against the registry's 0.48).

The extension is advertised in `scope["extensions"]` only on plain TCP: under TLS the kernel cannot encrypt what
it sends, so there the scope does not offer it and apps stream their bodies as before.

What is uvicorn's is left to uvicorn: this only intercepts the one new message type, sends the file after the
response head (which uvicorn's `send` wrote), and then lets uvicorn's `send` finish the response with an empty
body (Content-Length check, keep-alive or close, starting the next pipelined request). The cycle class itself is
not subclassed because uvicorn builds it inside the 60-line `on_headers_complete`; wrapping the `send` the app
receives needs only `_start_asgi_task`. That method, and the cycle's attributes read here, are uvicorn internals:
pyproject.toml pins the uvicorn versions this was checked against.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Mapping
from typing import Any, cast

from uvicorn._types import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, ASGISendEvent, Scope
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.protocols.utils import is_ssl

ZEROCOPY_SEND = "http.response.zerocopysend"
log = logging.getLogger(__name__)


class ZeroCopyHttpToolsProtocol(HttpToolsProtocol):
    """Pass as `uvicorn.Config(http=ZeroCopyHttpToolsProtocol, loop="asyncio")`: uvloop has no `loop.sendfile`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Offered where loop.sendfile really sends from the kernel: plain TCP on asyncio's own loop (uvloop's
        # sendfile raises NotImplementedError; under TLS asyncio would copy through Python anyway).
        self.zerocopy = isinstance(self.loop, asyncio.BaseEventLoop) and not is_ssl(transport)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.zerocopy:
            self.scope["extensions"] = {ZEROCOPY_SEND: {}}

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        # Also the path of pipelined requests, which start when the one before them completes.
        if ZEROCOPY_SEND in cycle.scope.get("extensions", {}):
            app = _with_zerocopy(app, cycle, self.loop)
        super()._start_asgi_task(cycle, app)


def _with_zerocopy(
    app: ASGI3Application, cycle: RequestResponseCycle, loop: asyncio.AbstractEventLoop
) -> ASGI3Application:
    async def send(message: Mapping[str, Any]) -> None:
        if message["type"] == ZEROCOPY_SEND:
            await send_file(cycle, loop, message)
        else:
            await cycle.send(cast(ASGISendEvent, message))

    async def app_with_zerocopy(scope: Scope, receive: ASGIReceiveCallable, _send: ASGISendCallable) -> None:
        await app(scope, receive, send)

    return app_with_zerocopy


async def send_file(cycle: RequestResponseCycle, loop: asyncio.AbstractEventLoop, message: Mapping[str, Any]) -> None:
    """One `http.response.zerocopysend` message: `count` bytes of `file` from `offset` (default: from the file's
    position to its end). Without `offset` the file's position ends after the last byte sent, also when the client
    went away half-way, so the app can tell how much went out."""
    # As uvicorn's own send: wait out back-pressure, and drop what is sent to a client that is gone.
    if cycle.flow.write_paused and not cycle.disconnected:
        await cycle.flow.drain()
    if cycle.disconnected or cycle.transport.is_closing():
        return
    if not cycle.response_started or cycle.response_complete:
        raise RuntimeError(f"ASGI message '{ZEROCOPY_SEND}' sent outside a response body.")
    file = message["file"]
    fd = file.fileno()
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode):
        # Checked here so that a failing sendfile below can only mean a broken connection.
        raise ValueError(f"{ZEROCOPY_SEND}: not a regular file")
    offset = message.get("offset")
    if offset is None:
        offset = os.lseek(fd, 0, os.SEEK_CUR)
    count = message.get("count")
    if count is None:
        count = status.st_size - offset
    if offset < 0 or count < 0:
        raise ValueError(f"{ZEROCOPY_SEND}: offset {offset} and count {count} must not be negative")
    # Nothing to send for HEAD (uvicorn drops HEAD bodies too); and a count of 0 would mean "to the end" to sendfile.
    if cycle.scope["method"] != "HEAD" and count:
        if cycle.chunked_encoding:
            cycle.transport.write(b"%x\r\n" % count)
        elif count > cycle.expected_content_length:
            raise RuntimeError("Response content longer than Content-Length")
        try:
            # Waits until the head (or a chunk header) has left the write buffer, and pauses reading meanwhile.
            # No fallback: for a regular file on a plain socket the native call only fails when the connection is
            # broken (a failure before its first byte comes as SendfileNotAvailableError), and the fallback would
            # then copy the file through Python to nobody.
            sent = await loop.sendfile(cycle.transport, file, offset, count, fallback=False)
        except (ConnectionError, asyncio.SendfileNotAvailableError) as exc:
            # The client hung up mid-body: as uvicorn does for a body sent to a client that is gone, no error; the
            # connection cannot carry another response, so it is closed.
            log.debug("client went away during sendfile: %r", exc)
            cycle.disconnected = True
            cycle.transport.close()
            return
        if sent != count:
            # The head promised bytes the file no longer has: the connection must not look like a complete answer.
            raise RuntimeError(f"{ZEROCOPY_SEND}: the file ended after {sent} of {count} bytes")
        if cycle.chunked_encoding:
            cycle.transport.write(b"\r\n")
        else:
            cycle.expected_content_length -= count
    await cycle.send({"type": "http.response.body", "body": b"", "more_body": bool(message.get("more_body", False))})
