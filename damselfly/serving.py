"""Running ASGI apps under uvicorn on sockets we bound ourselves (so a port in use is a one-line error)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from .client_cert import ClientCertHttpToolsProtocol
from .zerocopy import ZeroCopyHttpToolsProtocol


class BindError(Exception):
    """A listen address could not be bound."""


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Linux copies TCP_NODELAY to accepted connections. asyncio sets it itself only on sockets created with protocol
    # IPPROTO_TCP, which this one is not; without it every small answer on a kept-alive connection (a JSON view, a
    # manifest, an OCI error) waited for the client's delayed ACK, because uvicorn writes head and body separately:
    # 40 ms each (docs/benchmarks.md, the supernode's HTTP layer).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def make_server(
    app: ASGIApp, *, tls_cert: str = "", tls_key: str = "", client_ca: str = "", zerocopy: bool = True
) -> uvicorn.Server:
    """uvicorn for `app` on the running loop; `zerocopy` for apps that send files (the registry mirror);
    `client_ca`: mutual TLS, every client shows a certificate this CA signed, and the app is told whose."""
    protocol: Any = ZeroCopyHttpToolsProtocol if zerocopy else "httptools"
    if client_ca:
        protocol = ClientCertHttpToolsProtocol
    config = uvicorn.Config(
        app,
        # Ignored when serving on a loop of our own (`serve(sockets=...)` in damselfly/cli.py), as we do.
        loop="asyncio",
        # uvicorn's httptools protocol (it parses HTTP fast), plus `http.response.zerocopysend` where asked for, which
        # the registry mirror uses to send warm blobs with sendfile (damselfly/zerocopy.py). The supernode sends no
        # files: its per-request wrapper cost 7% of its CPU.
        http=protocol,
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_keep_alive=30,
        ssl_certfile=tls_cert or None,
        ssl_keyfile=tls_key or None,
        ssl_ca_certs=client_ca or None,
        ssl_cert_reqs=ssl.CERT_REQUIRED if client_ca else ssl.CERT_NONE,
    )
    server = uvicorn.Server(config)
    # Signals are handled by our own runner, which stops every server of the process together.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    return server


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request at INFO: far too much on the piece path.
    logging.getLogger("httpx").setLevel(logging.WARNING)


async def wait_started(server: uvicorn.Server, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not server.started:
        if asyncio.get_running_loop().time() > deadline:
            raise BindError("server did not start")
        await asyncio.sleep(0.01)
