"""The peer daemon's core: owns the store, the downloads, the swarm membership and the upload server.

The proxy asks it for blobs (`open_blob`); other peers reach it through the upload server (`locate_piece`).
Every background task it starts is owned here and ends with `close()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import httpcore
import httpx
from cachetools import LRUCache

from core.digest import Digest
from core.pieces import PieceLayout, choose_piece_size
from supernode.api import RegisterRequest, ReportRequest, mask_to_hex
from supernode.client import CredentialRefused, JoinRefused, SupernodeClient, SupernodeUnavailable, UnknownPeer
from supernode.shards import SupernodeShards
from upstream.raw_http import RawHttpClient

from .blob_handle import BlobHandle, LiveBlob, StoredBlob, open_complete
from .config import PeerConfig
from .download import BlobDownload, SwarmLink
from .host_facts import HostFactsGatherer, Traffic
from .identity_file import load_identity
from .piece_buffers import PieceBuffers
from .quota import QuotaPolicy
from .ratelimit import RateLimits, TokenBucket
from .source import RangeSource
from .stats import PeerStats
from .store import BlobStore
from .upload_api import PieceLocation, PieceView
from .upload_server import UploadServer

log = logging.getLogger(__name__)

# httpcore reads 64 KiB per receive. Blob bodies and pieces now go through peer/raw_http.py; what still streams
# through httpx is an upstream body not framed by Content-Length, where 64 KiB reads had cost a third of
# the throughput (measured: 0.9 against 1.4 GB/s on loopback). A class attribute, read at each receive.
httpcore.AsyncHTTP11Connection.READ_NUM_BYTES = 1 << 20


class StartupError(Exception):
    """The peer cannot start: a one-line reason for the operator."""


class PeerService:
    def __init__(self, config: PeerConfig, *, fault_corrupt: bool = False) -> None:
        self.config = config
        quota = QuotaPolicy(config.disk_quota, config.disk_high_watermark, config.disk_low_watermark)
        self.store = BlobStore(config.data_dir, quota)
        # Quota wiring: a blob evicted from the store is withdrawn from its swarm, so nobody is sent here for it.
        self.store.on_evict = self._withdraw
        self.stats = PeerStats()
        self.heartbeat_interval = DEFAULT_HEARTBEAT_INTERVAL
        timeout = httpx.Timeout(config.read_timeout, connect=config.connect_timeout)
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
        # The client of the supernode(s): with their CA and, under mutual TLS, this host's certificate.
        self.http = httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False, verify=_supernode_tls(config))
        self.identity = load_identity(config.data_dir)
        self.peer_id = self.identity.peer_id
        self.downloads: dict[str, BlobDownload] = {}
        self._download_tasks: dict[str, asyncio.Task[Any]] = {}
        # The piece digests of blobs that landed lately, for the piece views children ask for while the supernode is
        # away (a complete blob keeps no piece state); a few hundred blobs' worth, a few KiB each.
        self._landed_digests: LRUCache[str, dict[int, str]] = LRUCache(maxsize=512)
        self.limits = RateLimits(
            upload=TokenBucket(config.upload_rate),
            download=TokenBucket(config.download_rate),
            source=TokenBucket(config.source_rate),
        )
        self.piece_slots = asyncio.Semaphore(config.max_inflight_host)
        self.piece_buffers = PieceBuffers()
        self.piece_http = RawHttpClient(
            ssl_context=None, connect_timeout=config.connect_timeout, read_timeout=config.read_timeout
        )
        self.upload_server = UploadServer(
            self, join_token=config.join_token, fault_corrupt=fault_corrupt, limit=self.limits.upload
        )
        self.upload_port = 0
        # What each heartbeat tells of this host (peer/host_facts.py), for the platform's view of hosts.
        self.host_facts = HostFactsGatherer(
            self.store, config.disk_quota, lambda: Traffic.of(self.stats, self.upload_server.bytes_served)
        )
        self.supernode: SupernodeShards | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        # Serialises starting downloads, so two requests for one blob never open its partial file twice.
        self._open_lock = asyncio.Lock()

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            self.upload_port = await self.upload_server.start(self.config.upload_host, self.config.upload_port)
        except OSError as exc:
            raise StartupError(
                f"cannot listen for uploads on {self.config.upload_host}:{self.config.upload_port}: {exc.strerror}"
            ) from exc
        if self.config.supernode_url:
            # One URL, or several supernode processes sharing the swarms out by digest (supernode/shards.py).
            urls = [url.strip() for url in self.config.supernode_url.split(",") if url.strip()]
            self.supernode = SupernodeShards([self._supernode_client(url) for url in urls], self._supernode_client)
            # With a directory behind them (supernode/directory.py), the given ones lead to all the live ones.
            await self.supernode.refresh()
            await self._register_until(time.monotonic() + self.config.register_timeout)
            self.spawn(self._heartbeat_loop(), "heartbeat")
            self.spawn(self.supernode.keep_refreshed(), "supernode-directory")

    def _supernode_client(self, url: str) -> SupernodeClient:
        return SupernodeClient(url, self.http, self.config.join_token)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self.supernode is not None:
            with contextlib.suppress(SupernodeUnavailable):
                await self.supernode.leave(self.peer_id)
        await self.upload_server.close()
        await self.http.aclose()

    def spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Start a background task owned by this service (cancelled on close, never garbage-collected early)."""
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _register_until(self, deadline: float) -> None:
        assert self.supernode is not None
        request = RegisterRequest(
            self.peer_id, self.upload_port, self.config.advertise_host, self.config.labels, self.identity.secret,
            await self.host_facts.gather(), self.config.cluster_token,
        )
        delay = 0.2
        while True:
            try:
                response = await self.supernode.register(request)
                # Under mutual TLS the supernode names us by our certificate (supernode/identity.py).
                self.peer_id = response.peer_id
                request.peer_id = response.peer_id
                self.heartbeat_interval = _bounded_interval(response.heartbeat_interval)
                log.info("registered with the supernode as %s, reachable at %s", self.peer_id, response.url)
                return
            except (JoinRefused, CredentialRefused) as exc:
                raise StartupError(f"supernode {self.config.supernode_url}: {exc}") from exc
            except SupernodeUnavailable as exc:
                if time.monotonic() + delay > deadline:
                    raise StartupError(f"supernode {self.config.supernode_url} unreachable: {exc}") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _heartbeat_loop(self) -> None:
        assert self.supernode is not None
        while True:
            # The supernode says how often it wants to hear from us (it expires peers by that clock).
            await asyncio.sleep(self.heartbeat_interval)
            try:
                await self.supernode.heartbeat(self.peer_id, await self.host_facts.gather())
            except UnknownPeer:
                # The supernode restarted or expired us: join again; swarms are rejoined by their downloads.
                with contextlib.suppress(StartupError):
                    await self._register_until(time.monotonic() + 5.0)
            except SupernodeUnavailable as exc:
                log.debug("heartbeat failed: %s", exc)

    # --- blobs -------------------------------------------------------------------------------------

    def complete_size(self, digest: Digest) -> int | None:
        return self.store.stat(digest)

    @property
    def active_downloads(self) -> int:
        return len(self.downloads)

    async def open_blob(
        self, digest: Digest, size: int, source: RangeSource, *, verify: bool = True, content: Digest | None = None,
        confirm: Callable[[], Awaitable[None]] | None = None, rate: float = 0.0,
    ) -> BlobHandle:
        """The blob for a reader: the complete file, opened, when the store holds it whole; else the download of
        it on this host, started from `source` if none is running. A blob that has just landed may be served
        either way: its running download's readers get the same verified bytes.

        A file (proxy/files.py) is stored and swarmed under a file key (core/file_key.py), never under a blob's
        digest; it starts its download with `content`, the digest the user gave, or with `verify` False when there
        is none (peer/landing.py), `confirm` (its origin still describes the version fetched) and `rate`
        (bytes per second for this download, within the host's limits; 0: the host's limits only)."""
        stored = self._open_stored(digest, size)
        if stored is not None:
            return stored
        async with self._open_lock:
            # Looked at again under the lock: a download may have landed it a moment ago.
            download = self.downloads.get(str(digest))
            if download is None or _failed(download):
                stored = self._open_stored(digest, size)
                if stored is not None:
                    return stored
                download = await self._start_download(digest, size, source, verify, content, confirm, rate)
            return LiveBlob(download, self.stats)

    async def prefetch(self, digest: Digest, size: int, source: RangeSource) -> None:
        """Start the blob's download unless it is here or on its way; nothing is read."""
        if self.store.stat(digest) == size:
            return
        async with self._open_lock:
            download = self.downloads.get(str(digest))
            if (download is None or _failed(download)) and self.store.stat(digest) != size:
                await self._start_download(digest, size, source)

    def _open_stored(self, digest: Digest, size: int) -> StoredBlob | None:
        file = open_complete(self.store.complete_path(digest), size)
        if file is None:
            return None
        self.store.touch(digest)  # quota wiring: a read is a use, for least-recently-used eviction
        return StoredBlob(file, self.stats)

    def download_of(self, key: Digest) -> BlobDownload | None:
        """The running (or just ended) download of a blob or file on this host, for its progress."""
        return self.downloads.get(str(key))

    async def _start_download(
        self, digest: Digest, size: int, source: RangeSource, verify: bool = True, content: Digest | None = None,
        confirm: Callable[[], Awaitable[None]] | None = None, rate: float = 0.0,
    ) -> BlobDownload:
        """Called under `_open_lock`."""
        key = str(digest)
        layout = PieceLayout(size, choose_piece_size(size))
        partial = await self.store.open_partial(digest, layout)
        swarm = SwarmLink(self.supernode, self.peer_id) if self.supernode is not None else None
        download = BlobDownload(
            digest,
            partial,
            store=self.store,
            config=self.config,
            piece_http=self.piece_http,
            swarm=swarm,
            stats=self.stats,
            limits=self.limits.within(rate) if rate else self.limits,
            piece_slots=self.piece_slots,
            buffers=self.piece_buffers,
            verify=verify,
            content=content,
            confirm=confirm,
        )
        self.downloads[key] = download
        # The download is owned by the service, not by the request: it outlives a client that disconnects.
        task = self.spawn(download.run(source), f"download-{key[:19]}")
        self._download_tasks[key] = task
        task.add_done_callback(lambda _: self._forget(key, download))
        return download

    def stop_download(self, download: BlobDownload) -> None:
        """Stop a download its one asker gave up (a cancelled job of the agent started it): its verified pieces stay
        in the partial file for a later start to resume, and this host leaves the blob's swarm. A reader that came
        meanwhile is cut off, and asks again."""
        key = str(download.digest)
        task = self._download_tasks.get(key)
        if self.downloads.get(key) is download and task is not None and not task.done():
            task.cancel()
            self._withdraw(download.digest)

    def _forget(self, key: str, download: BlobDownload) -> None:
        if self.downloads.get(key) is download:
            del self.downloads[key]
            self._download_tasks.pop(key, None)
        if not _failed(download) and download.partial.complete:
            self._landed_digests[key] = dict(download.partial.piece_digests)

    def _withdraw(self, digest: Digest) -> None:
        if self.supernode is not None:
            self.spawn(self._leave_swarm(self.supernode, digest), f"withdraw-{str(digest)[:19]}")

    async def _leave_swarm(self, supernode: SupernodeShards, digest: Digest) -> None:
        # `failed` takes a member out of the swarm; an unknown swarm (404) or a supernode that is down is no matter.
        with contextlib.suppress(SupernodeUnavailable):
            await supernode.report(str(digest), ReportRequest(self.peer_id, failed=True))

    async def piece_view(self, digest: Digest, known: int, wait: float) -> PieceView | None:
        """This host's own view of a blob, for children while the supernode is away (peer/parent_views.py); while
        the pieces held are those of `known`, waits up to `wait` seconds for that to change."""
        download = self.downloads.get(str(digest))
        if download is not None and not _failed(download):
            await download.wait_for_news(known, wait)
            partial, layout = download.partial, download.layout
            held = dict(partial.piece_digests)
            return PieceView(layout.blob_size, layout.piece_size, mask_to_hex(partial.mask), held)
        digests = self._landed_digests.get(str(digest))
        size = self.store.stat(digest)
        if digests is None or size is None:
            return None  # complete, but its piece digests are no longer known here: not worth computing
        layout = PieceLayout(size, choose_piece_size(size))
        return PieceView(size, layout.piece_size, mask_to_hex((1 << layout.count) - 1), dict(digests))

    async def locate_piece(self, digest: Digest, index: int, wait: float) -> PieceLocation | None:
        size = self.store.stat(digest)
        if size is not None:
            layout = PieceLayout(size, choose_piece_size(size))
            if not 0 <= index < layout.count:
                return None
            self.store.touch(digest)  # quota wiring: serving a peer is a use, for least-recently-used eviction
            return PieceLocation(self.store.complete_path(digest), layout.offset(index), layout.length(index))
        download = self.downloads.get(str(digest))
        if download is None or not 0 <= index < download.layout.count:
            return None
        try:
            if not await download.wait_piece(index, wait):
                return None
        except Exception:
            return None
        layout = download.layout
        return PieceLocation(download.data_path, layout.offset(index), layout.length(index))


def _failed(download: BlobDownload) -> bool:
    result = download.result
    return result.done() and (result.cancelled() or result.exception() is not None)


# Until the supernode has said otherwise; the supernode's own default (supernode/config.py) is the same.
DEFAULT_HEARTBEAT_INTERVAL = 2.0


def _bounded_interval(asked: float) -> float:
    """The supernode's heartbeat interval, kept within sense: a broken or hostile answer must neither make the peer
    flood it (0) nor fall silent until it is expired (an hour)."""
    if not asked > 0:  # also NaN
        return DEFAULT_HEARTBEAT_INTERVAL
    return min(max(asked, 0.1), 60.0)


def _supernode_tls(config: PeerConfig) -> ssl.SSLContext | bool:
    """How an https supernode is checked: its CA if given, else the system's; this host's certificate if given."""
    if not (config.supernode_ca or config.tls_client_cert):
        return True
    try:
        context = ssl.create_default_context(cafile=config.supernode_ca or None)
        if config.tls_client_cert:
            context.load_cert_chain(config.tls_client_cert, config.tls_client_key or None)
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(f"supernode TLS settings: {exc}") from exc
    return context
