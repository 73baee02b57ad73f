"""Blobs: access checked with the upstream, then served from the local store or through the swarm."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from core import errors
from core.errors import RegistryError
from peer.blob_handle import StoredBlob
from peer.download import DownloadFailed
from peer.service import PeerService
from upstream.blob import BlobSource
from upstream.clients import Upstreams

from .access import AccessChecker
from .ranges import parse_range
from .routing import Target

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
    source = BlobSource(upstreams.client(target.registry), target.repository, str(digest), client_auth)
    blob = await peer.open_blob(digest, size, source)
    if isinstance(blob, StoredBlob):
        return StoredBlobResponse(blob, start, end, status_code=status, headers=headers)
    try:
        # Whatever can fail before the first byte becomes a proper OCI error instead of a cut-off 200.
        if byte_range is not None:
            # A client cannot check a range against the blob's digest, and a range that ends before the blob does
            # is not held back by the last piece: it is served only once the whole blob has passed its digest.
            await blob.verified()
        await blob.wait_readable(start)
    except DownloadFailed as exc:
        raise RegistryError(errors.UPSTREAM_FAILED, detail=str(exc)[:300]) from exc
    return StreamingResponse(blob.read_range(start, end), status_code=status, headers=headers)


class StoredBlobResponse(Response):
    """Bytes [start, end] of a blob complete in the store, from the file the peer opened (see StoredBlob).

    Sent with the server's zero-copy extension where the scope offers it (plain HTTP), else read in chunks and
    streamed (TLS); the file is closed once the answer is sent or the client has gone.
    """

    def __init__(self, blob: StoredBlob, start: int, end: int, *, status_code: int, headers: dict[str, str]) -> None:
        super().__init__(status_code=status_code, headers=headers)
        self.blob = blob
        self.start = start
        self.end = end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if ZEROCOPY_SEND in scope.get("extensions", {}):
                await self._send_zerocopy(send)
            else:
                chunks = self.blob.read_range(self.start, self.end)
                streamed = StreamingResponse(chunks, status_code=self.status_code, headers=self.headers)
                await streamed(scope, receive, send)
        finally:
            self.blob.close()

    async def _send_zerocopy(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        # Sent from the file's position, which the send leaves after the last byte that went out: what the client
        # got, also when it hung up half-way.
        file = self.blob.file
        file.seek(self.start)
        await send({"type": ZEROCOPY_SEND, "file": file, "count": self.end - self.start + 1})
        self.blob.sent_zerocopy(file.tell() - self.start)
