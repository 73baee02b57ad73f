"""The files endpoint: a loopback-only HTTP API through which `damselfly get` (and any local tool) fetches a file
from a configured origin through the swarm (docs/files.md).

    POST /files        {"url": ..., "digest": "sha256:..." (optional), "headers": {...} (optional), "rate": ...}
                       -> 200, the file's bytes (Content-Length; X-Damselfly-File-Key names its progress)
    GET  /files/<key>  -> {"state", "size", "from_peers", "from_origin", "digest", "error"}: one fetch's progress

The file is a blob of the peer (peer/service.py) keyed by its digest when one is given, else by its file key
(core/file_key.py); the bytes are streamed as their pieces are verified, and the last piece only once the whole
file matched its digest (with one) or its origin confirmed the version fetched (without). An error before the first
byte is `{"error": "<one line>"}` with a status; one after it cuts the body short, and the fetch's progress says
why. The origin's headers and the caller's go to the origin only: they are never logged nor stored here.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cachetools import LRUCache
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from core.digest import Digest, InvalidDigest
from core.errors import RegistryError
from core.file_key import digest_file_key, file_key
from peer.blob_handle import StoredBlob
from peer.download import BlobDownload, DownloadFailed
from peer.ratelimit import parse_rate
from peer.service import PeerService
from upstream.origin import FileOrigins, FileSource, OriginClient, OriginError, OriginRefused, check_headers

from .blobs import StoredBlobResponse
from .config import ProxyConfig

log = logging.getLogger(__name__)
FILES_PATH = "/files"
KEY_HEADER = "x-damselfly-file-key"
MAX_BODY = 64 * 1024
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


class FileRequestError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(slots=True)
class FileFetch:
    """One file asked for on this host, for its progress: the download, or None when the store had it whole."""

    key: Digest
    size: int
    # The digest the caller gave, which the whole file was checked against (None: none given).
    content: Digest | None
    download: BlobDownload | None

    def progress(self) -> dict[str, Any]:
        download = self.download
        answer: dict[str, Any] = {"key": str(self.key), "size": self.size, "from_peers": 0, "from_origin": 0}
        digest = str(self.content) if self.content is not None else ""
        if download is None:
            return {**answer, "state": "done", "have": self.size, "digest": digest, "error": ""}
        landing = download.landing
        answer["from_peers"], answer["from_origin"] = landing.bytes_from_peers, landing.bytes_from_upstream
        layout = download.layout
        answer["have"] = sum(layout.length(i) for i in range(layout.count) if download.partial.has(i))
        result = download.result
        if not result.done():
            return {**answer, "state": "running", "digest": digest, "error": ""}
        if result.cancelled() or result.exception() is not None:
            error = "the daemon is stopping" if result.cancelled() else str(result.exception())
            return {**answer, "state": "failed", "digest": digest, "error": error[:500]}
        if landing.content_sha256 and not digest:
            digest = f"sha256:{landing.content_sha256}"
        return {**answer, "state": "done", "have": self.size, "digest": digest, "error": ""}


class FilesApi:
    def __init__(self, config: ProxyConfig, peer: PeerService) -> None:
        self.peer = peer
        self.origins = FileOrigins(config.file_origins)
        self._clients: dict[str, OriginClient] = {}
        self.fetches: LRUCache[str, FileFetch] = LRUCache(maxsize=256)

    def client(self, url: str) -> OriginClient:
        origin = self.origins.origin_for(url)
        client = self._clients.get(origin.url)
        if client is None:
            client = self._clients[origin.url] = OriginClient(origin, self.peer.config.upstream)
        return client

    async def fetch(self, request: Request) -> Response:
        url, digest, headers, rate = await _read_request(request)
        client = self.client(url)
        extra = check_headers(headers, "headers")
        origin_file = await client.probe(url, extra)
        size = origin_file.size
        if digest is not None:
            key, confirm = digest_file_key(digest), None
        else:
            key = file_key(url, size, origin_file.etag, origin_file.last_modified, client.origin.ignore_query)
            source_extra = extra

            async def confirm() -> None:
                await client.confirm(origin_file, source_extra)

        # Without its query, which may carry a signature: logs hold no credentials.
        log.info("file %s (%d bytes) as %s", _without_query(url), size, key)
        answer_headers = {"content-type": "application/octet-stream", "content-length": str(size), KEY_HEADER: str(key)}
        if size == 0:
            if digest is not None and not (digest.algorithm == "sha256" and digest.hex == EMPTY_SHA256):
                raise FileRequestError(409, f"the origin's file is empty, which does not match {digest}")
            self.fetches[str(key)] = FileFetch(key, 0, digest, None)
            return Response(b"", headers=answer_headers)
        source = FileSource(client, origin_file, extra)
        blob = await self.peer.open_blob(
            key, size, source, verify=digest is not None, content=digest, confirm=confirm if digest is None else None,
            rate=rate,
        )
        if isinstance(blob, StoredBlob):
            self.fetches[str(key)] = FileFetch(key, size, digest, None)
            return StoredBlobResponse(blob, 0, size - 1, status_code=200, headers=answer_headers)
        self.fetches[str(key)] = FileFetch(key, size, digest, blob.download)
        try:
            await blob.wait_readable(0)
        except DownloadFailed as exc:
            raise FileRequestError(502, str(exc)) from exc
        return StreamingResponse(_logged(blob.read_range(0, size - 1), key), headers=answer_headers)

    async def progress(self, request: Request) -> Response:
        fetch = self.fetches.get(request.path_params["key"])
        if fetch is None:
            return JSONResponse({"error": "no such fetch on this host"}, status_code=404)
        return JSONResponse(fetch.progress())

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()


async def _logged(chunks: AsyncIterator[bytes], key: Digest) -> AsyncIterator[bytes]:
    """The body; a failure after the first byte cuts it short (the caller sees fewer bytes than announced)."""
    try:
        async for chunk in chunks:
            yield chunk
    except DownloadFailed as exc:
        log.warning("file %s cut off: %s", key, exc)
        raise


async def _read_request(request: Request) -> tuple[str, Digest | None, dict[str, str], float]:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise FileRequestError(413, "request body too large")
    try:
        fields = json.loads(body)
    except ValueError as exc:
        raise FileRequestError(400, "the request body must be JSON: {\"url\": ..., \"digest\": ...}") from exc
    if not isinstance(fields, dict) or not isinstance(fields.get("url"), str):
        raise FileRequestError(400, "the request needs a \"url\"")
    unknown = set(fields) - {"url", "digest", "headers", "rate"}
    if unknown:
        raise FileRequestError(400, f"unknown fields {sorted(unknown)}")
    digest = None
    if fields.get("digest"):
        try:
            digest = Digest.parse(str(fields["digest"]))
        except InvalidDigest as exc:
            raise FileRequestError(400, f"{exc}: expected sha256:<64 hex digits>") from exc
    headers = fields.get("headers") or {}
    if not isinstance(headers, dict):
        raise FileRequestError(400, "\"headers\" must be an object of names to values")
    try:
        rate = parse_rate(str(fields.get("rate") or ""))
    except ValueError as exc:
        raise FileRequestError(400, str(exc)) from exc
    return fields["url"], digest, headers, rate


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"[:200]


def _loopback(request: Request) -> bool:
    if request.client is None:
        return False
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(request.client.host).is_loopback
    return False


def create_files_app(config: ProxyConfig, peer: PeerService) -> Starlette:
    api = FilesApi(config, peer)

    def guarded(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def answer(request: Request) -> Response:
            # Bound to loopback (damselfly/settings.py refuses another address); checked again per request, as the
            # endpoint fetches with the origins' credentials for whoever reaches it.
            if not _loopback(request):
                return JSONResponse({"error": "the files endpoint answers this host only"}, status_code=403)
            try:
                return await handler(request)
            except FileRequestError as exc:
                return JSONResponse({"error": str(exc)}, status_code=exc.status)
            except OriginRefused as exc:
                return JSONResponse({"error": str(exc)}, status_code=403)
            except OriginError as exc:
                return JSONResponse({"error": str(exc)}, status_code=502)
            except RegistryError as exc:  # the disk quota (507)
                return JSONResponse({"error": exc.message if not exc.detail else str(exc.detail)},
                                    status_code=exc.status)

        return answer

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await api.aclose()

    routes = [
        Route(FILES_PATH, guarded(api.fetch), methods=["POST"]),
        Route(FILES_PATH + "/{key}", guarded(api.progress), methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.files = api
    return app
