"""Blobs: access checked with the upstream, then served from the local store or through the swarm."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from io import FileIO
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from core import errors
from core.errors import RegistryError
from peer.download import DownloadFailed
from peer.service import PeerService
from upstream.blob import BlobSource
from upstream.clients import Upstreams

from .access import AccessChecker
from .ranges import parse_range
from .routing import Target

READ_CHUNK = 1024 * 1024
# The ASGI zero-copy send extension: the server sends an open file's bytes itself (sendfile), where it offers it.
ZEROCOPY_SEND = "http.response.zerocopysend"


async def serve_blob(
    request: Request, target: Target, peer: PeerService, access: AccessChecker, upstreams: Upstreams
) -> Response:
    digest = target.digest
    assert digest is not None  # routing validated it
    client_auth = request.headers.get("authorization")
    size = await access.blob_size(target, client_auth)
    byte_range = parse_range(request.headers.get("range"), size)
    start, end = byte_range if byte_range is not None else (0, size - 1)
    headers = {
        "content-type": "application/octet-stream",
        "docker-content-digest": str(digest),
        "accept-ranges": "bytes",
        "etag": f'"{digest}"',
        "content-length": str(end - start + 1 if size else 0),
    }
    status = 200
    if byte_range is not None:
        status = 206
        headers["content-range"] = f"bytes {start}-{end}/{size}"
    if request.method == "HEAD" or size == 0:
        return Response(status_code=status, headers=headers)
    path = peer.store.complete_path(digest)
    stored = _open_complete(path, size)
    if stored is None:
        source = BlobSource(upstreams.client(target.registry), target.repository, str(digest), client_auth)
        download = await peer.open_blob(digest, size, source)
        if download is not None:
            try:
                # Whatever can fail before the first byte becomes a proper OCI error instead of a cut-off 200.
                await download.wait_readable(start)
            except DownloadFailed as exc:
                raise RegistryError(errors.UPSTREAM_FAILED, detail=str(exc)[:300]) from exc
            return StreamingResponse(_count(download.read_range(start, end), peer), status_code=status, headers=headers)
        # It landed in the store a moment ago.
        stored = _open_complete(path, size)
        if stored is None:
            raise RegistryError(errors.UNAVAILABLE, detail="the blob left the store as it was opened; try again")
    peer.store.touch(digest)
    return StoredBlobResponse(stored, start, end, peer, status_code=status, headers=headers)


def _open_complete(path: Path, size: int) -> FileIO | None:
    """The complete blob, open for reading; None when the store does not hold it whole."""
    try:
        # Unbuffered: the bytes are read by sendfile or pread, never through a Python buffer.
        file = open(path, "rb", buffering=0)  # noqa: SIM115 (the response closes it once sent)
    except FileNotFoundError:
        return None
    if os.fstat(file.fileno()).st_size != size:
        file.close()
        return None
    return file


class StoredBlobResponse(Response):
    """Bytes [start, end] of a blob complete in the store, from a file opened before the status line goes out.

    Opened first, so a blob evicted in between is an error before the first byte rather than a cut-off 200; held
    open until the last byte is sent, so the quota does not evict it meanwhile (peer/quota.py evicts no blob this
    process has open). Sent with the server's zero-copy extension where the scope offers it (plain HTTP), else read
    in chunks and streamed (TLS).
    """

    def __init__(
        self, file: FileIO, start: int, end: int, peer: PeerService, *, status_code: int, headers: dict[str, str]
    ) -> None:
        super().__init__(status_code=status_code, headers=headers)
        self.file = file
        self.start = start
        self.end = end
        self.peer = peer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if ZEROCOPY_SEND in scope.get("extensions", {}):
                await self._send_zerocopy(send)
            else:
                streamed = StreamingResponse(self._chunks(), status_code=self.status_code, headers=self.headers)
                await streamed(scope, receive, send)
        finally:
            self.file.close()

    async def _send_zerocopy(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        # Sent from the file's position, which the send leaves after the last byte that went out: what the client
        # got, also when it hung up half-way.
        self.file.seek(self.start)
        await send({"type": ZEROCOPY_SEND, "file": self.file, "count": self.end - self.start + 1})
        sent = self.file.tell() - self.start
        self.peer.stats.bytes_served_local += sent
        self.peer.stats.bytes_served_zerocopy += sent

    async def _chunks(self) -> AsyncIterator[bytes]:
        fd = self.file.fileno()
        position = self.start
        while position <= self.end:
            chunk = await asyncio.to_thread(os.pread, fd, min(READ_CHUNK, self.end - position + 1), position)
            if not chunk:
                raise OSError("blob shorter than its recorded size")
            position += len(chunk)
            self.peer.stats.bytes_served_local += len(chunk)
            yield chunk


async def _count(chunks: AsyncIterator[bytes], peer: PeerService) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        peer.stats.bytes_served_local += len(chunk)
        yield chunk
