"""The zero-copy send extension on the real uvicorn server with our protocol (damselfly/serving.py), in-process.

The registry mirror's use of it (Content-Length bodies, ranges, keep-alive, hang-ups) is tested against the real
daemon in tests/proxy/test_zerocopy_blobs.py; here are the parts of the extension the mirror does not use but a
server offering it must get right: defaults for offset and count, chunked bodies mixed with ordinary body
messages, and an app that tries to send more than its Content-Length.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from damselfly.serving import bind, make_server, wait_started
from tests.support.tls import TestCA

ZEROCOPY_SEND = "http.response.zerocopysend"
DATA = bytes(range(256)) * 400  # 102400 bytes, every offset recognisable


class FileApp:
    """A raw ASGI app that answers each path with one way of using the extension on `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.positions: list[int] = []  # the file's position after each send without an offset

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        with self.path.open("rb", buffering=0) as file:
            await getattr(self, scope["path"].strip("/").replace("-", "_"))(scope, file, send)

    async def offered(self, scope: dict[str, Any], file: Any, send: Any) -> None:
        body = json.dumps(ZEROCOPY_SEND in scope.get("extensions", {})).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})

    async def window(self, scope: dict[str, Any], file: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"50000")]})
        await send({"type": ZEROCOPY_SEND, "file": file, "offset": 100, "count": 50000})

    async def rest(self, scope: dict[str, Any], file: Any, send: Any) -> None:
        # Neither offset nor count: from the file's position to its end.
        file.seek(1000)
        length = len(DATA) - 1000
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % length)]})
        await send({"type": ZEROCOPY_SEND, "file": file})
        self.positions.append(file.tell())

    async def chunked(self, scope: dict[str, Any], file: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"<", "more_body": True})
        await send({"type": ZEROCOPY_SEND, "file": file, "offset": 0, "count": 5000, "more_body": True})
        await send({"type": ZEROCOPY_SEND, "file": file, "offset": 6000, "count": 0, "more_body": True})
        await send({"type": ZEROCOPY_SEND, "file": file, "offset": 7000, "count": 300, "more_body": True})
        await send({"type": "http.response.body", "body": b">"})

    async def too_long(self, scope: dict[str, Any], file: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]})
        await send({"type": ZEROCOPY_SEND, "file": file, "offset": 0, "count": 1000})


@pytest.fixture
def app(tmp_path: Path) -> FileApp:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    return FileApp(path)


@contextlib.asynccontextmanager
async def serving(app: FileApp, tls_cert: str = "", tls_key: str = "") -> AsyncIterator[int]:
    sock = bind("127.0.0.1", 0)
    port = int(sock.getsockname()[1])
    server = make_server(app, tls_cert=tls_cert, tls_key=tls_key)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await wait_started(server)
        yield port
    finally:
        server.should_exit = True
        await task


async def test_offset_and_count_and_their_defaults(app: FileApp) -> None:
    async with serving(app) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        assert (await client.get("/offered")).json() is True
        window = await client.get("/window")
        assert window.content == DATA[100:50100]
        rest = await client.get("/rest")
        assert rest.content == DATA[1000:]
        # The position moved past the bytes sent: what an app reads to count them.
        assert app.positions == [len(DATA)]
        head = await client.head("/window")
        assert (head.status_code, head.headers["content-length"], head.content) == (200, "50000", b"")


async def test_chunked_bodies_mix_file_parts_and_ordinary_body_messages(app: FileApp) -> None:
    async with serving(app) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        for _ in range(2):  # and the connection stays usable after it
            response = await client.get("/chunked")
            assert response.headers["transfer-encoding"] == "chunked"
            assert response.content == b"<" + DATA[:5000] + DATA[7000:7300] + b">"


async def test_a_file_longer_than_the_content_length_is_refused_before_a_byte_of_it(
    app: FileApp, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(app) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        # uvicorn's loggers do not propagate to the root logger, where caplog listens.
        uvicorn_log = logging.getLogger("uvicorn.error")
        uvicorn_log.addHandler(caplog.handler)
        try:
            async with client.stream("GET", "/too-long") as response:
                assert response.headers["content-length"] == "10"
                received = bytearray()
                with pytest.raises(httpx.RemoteProtocolError):
                    async for chunk in response.aiter_raw():
                        received += chunk
        finally:
            uvicorn_log.removeHandler(caplog.handler)
        assert received == b""
        assert (await client.get("/offered")).json() is True
    assert "Response content longer than Content-Length" in caplog.text


async def test_under_tls_the_extension_is_not_offered(app: FileApp, tmp_path: Path) -> None:
    ca = TestCA.create(tmp_path / "ca")
    cert = ca.issue(tmp_path / "cert")
    verify = ssl.create_default_context(cafile=str(ca.cert_path))
    async with (
        serving(app, str(cert.cert_path), str(cert.key_path)) as port,
        httpx.AsyncClient(base_url=f"https://127.0.0.1:{port}", verify=verify) as client,
    ):
        assert (await client.get("/offered")).json() is False
