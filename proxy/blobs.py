"""Blobs: access checked with the upstream, then served from the local store or through the swarm."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from core import errors
from core.errors import RegistryError
from peer.download import DownloadFailed
from peer.service import PeerService
from peer.upstream import BlobSource

from .access import AccessChecker
from .ranges import parse_range
from .routing import Target
from .upstreams import Upstreams

READ_CHUNK = 1024 * 1024


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
    download = None
    if peer.complete_size(digest) != size:
        source = BlobSource(upstreams.client(target.registry), target.repository, str(digest), client_auth)
        download = await peer.open_blob(digest, size, source)
    if download is None:
        peer.store.touch(digest)
        body = _read_file(peer.store.complete_path(digest), start, end, peer)
    else:
        try:
            # Whatever can fail before the first byte becomes a proper OCI error instead of a cut-off 200.
            await download.wait_readable(start)
        except DownloadFailed as exc:
            raise RegistryError(errors.UPSTREAM_FAILED, detail=str(exc)[:300]) from exc
        body = _count(download.read_range(start, end), peer)
    return StreamingResponse(body, status_code=status, headers=headers)


async def _read_file(path: Path, start: int, end: int, peer: PeerService) -> AsyncIterator[bytes]:
    fd = os.open(path, os.O_RDONLY)
    try:
        position = start
        while position <= end:
            chunk = await asyncio.to_thread(os.pread, fd, min(READ_CHUNK, end - position + 1), position)
            if not chunk:
                raise OSError("blob shorter than its recorded size")
            position += len(chunk)
            peer.stats.bytes_served_local += len(chunk)
            yield chunk
    finally:
        os.close(fd)


async def _count(chunks: AsyncIterator[bytes], peer: PeerService) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        peer.stats.bytes_served_local += len(chunk)
        yield chunk
