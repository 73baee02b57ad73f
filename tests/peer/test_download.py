"""A download alone (no swarm): verified before it lands, held back at the end, resumed after a restart."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from core.digest import Digest
from core.pieces import MiB, PieceLayout
from peer.config import PeerConfig
from peer.download import BlobDownload, DownloadFailed
from peer.piece_buffers import PieceBuffers
from peer.source import RangeBody
from peer.stats import PeerStats
from peer.store import BlobStore
from upstream.blob import ChunkedBody
from upstream.client import UpstreamError
from upstream.config import UpstreamConfig

SIZE = 10 * MiB + 12345  # three pieces, the last one short


class MemorySource:
    """The upstream's bytes, with a switch to corrupt them and a count of what was asked."""

    def __init__(self, data: bytes, *, corrupt_at: int | None = None, fail_after: int | None = None) -> None:
        self.data = data
        self.corrupt_at = corrupt_at
        self.fail_after = fail_after
        self.ranges: list[tuple[int, int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    @asynccontextmanager
    async def open_range(self, start: int, end: int) -> AsyncIterator[RangeBody]:
        self.ranges.append((start, end))
        yield ChunkedBody(self._chunks(start, end))

    async def _chunks(self, start: int, end: int) -> AsyncIterator[bytes]:
        position = start
        while position <= end:
            if self.fail_after is not None and position >= self.fail_after:
                self.fail_after = None
                raise UpstreamError("connection reset")
            if position >= 4 * MiB:
                await self.gate.wait()
            chunk = bytearray(self.data[position : min(position + 65536, end + 1)])
            if self.corrupt_at is not None and position <= self.corrupt_at < position + len(chunk):
                chunk[self.corrupt_at - position] ^= 0xFF
            position += len(chunk)
            yield bytes(chunk)


async def make_download(root: Path, data: bytes, digest: Digest) -> tuple[BlobDownload, BlobStore]:
    store = BlobStore(root)
    layout = PieceLayout(len(data), 4 * MiB)
    partial = await store.open_partial(digest, layout)
    config = PeerConfig(data_dir=root, upstream=UpstreamConfig(backoff=0.01))
    download = BlobDownload(digest, partial, store=store, config=config, swarm=None, stats=PeerStats())
    return download, store


def blob() -> tuple[bytes, Digest]:
    data = hashlib.sha256(b"seed").digest() * (SIZE // 32) + b"x" * (SIZE % 32)
    return data, Digest.parse("sha256:" + hashlib.sha256(data).hexdigest())


async def read_all(download: BlobDownload, start: int, end: int) -> bytes:
    return b"".join([chunk async for chunk in download.read_range(start, end)])


async def test_a_good_blob_lands_and_reads_back(tmp_path: Path) -> None:
    data, digest = blob()
    download, store = await make_download(tmp_path, data, digest)
    source = MemorySource(data)
    reader = asyncio.create_task(read_all(download, 0, len(data) - 1))
    await download.run(source)
    assert await reader == data
    assert store.complete_path(digest).read_bytes() == data
    assert not list(store.partial_dir.iterdir())


async def test_a_corrupt_upstream_never_lands_and_the_reader_never_gets_the_end(tmp_path: Path) -> None:
    data, digest = blob()
    download, store = await make_download(tmp_path, data, digest)
    received = bytearray()

    async def reader() -> None:
        async for chunk in download.read_range(0, len(data) - 1):
            received.extend(chunk)

    reading = asyncio.create_task(reader())
    await download.run(MemorySource(data, corrupt_at=5 * MiB))
    with pytest.raises(DownloadFailed, match="does not match its digest"):
        await reading
    # The reader got the pieces before the last one, never the whole: its own digest check cannot pass.
    assert len(received) < len(data)
    assert store.stat(digest) is None
    assert not list(store.partial_dir.iterdir())


async def test_the_last_piece_waits_for_the_whole_blob(tmp_path: Path) -> None:
    data, digest = blob()
    download, _ = await make_download(tmp_path, data, digest)
    source = MemorySource(data)
    source.gate.clear()  # the upstream stalls after the first piece
    running = asyncio.create_task(download.run(source))
    first = await read_all(download, 0, 4 * MiB - 1)
    assert first == data[: 4 * MiB]
    tail = asyncio.create_task(read_all(download, len(data) - 10, len(data) - 1))
    await asyncio.sleep(0.05)
    assert not tail.done()
    source.gate.set()
    assert await tail == data[-10:]
    await running


async def test_a_broken_body_resumes_with_a_range_from_the_missing_piece(tmp_path: Path) -> None:
    data, digest = blob()
    download, store = await make_download(tmp_path, data, digest)
    source = MemorySource(data, fail_after=6 * MiB)
    await download.run(source)
    assert store.complete_path(digest).read_bytes() == data
    # First the whole blob, then only from the piece the break interrupted (piece 1 starts at 4 MiB).
    assert source.ranges == [(0, len(data) - 1), (4 * MiB, len(data) - 1)]


async def test_a_restart_keeps_verified_pieces_and_drops_damaged_ones(tmp_path: Path) -> None:
    data, digest = blob()
    layout = PieceLayout(len(data), 4 * MiB)
    store = BlobStore(tmp_path)
    partial = await store.open_partial(digest, layout)
    for index in range(2):
        piece = data[layout.offset(index) : layout.offset(index) + layout.length(index)]
        partial.write_at(index, piece)
        partial.mark(index, hashlib.sha256(piece).hexdigest())
    await partial.save_state()
    partial.close()
    # Damage piece 1 on disk behind the state file's back, as a crash could.
    with partial.data_path.open("r+b") as file:
        file.seek(4 * MiB + 7)
        file.write(b"\x00")
    resumed = await store.open_partial(digest, layout)
    assert resumed.has(0) and not resumed.has(1) and not resumed.has(2)
    resumed.close()


async def test_downloads_sharing_piece_buffers_each_get_their_own_bytes(tmp_path: Path) -> None:
    # Buffers go from one download to the next: neither the readers nor the landed blobs may see another blob's
    # bytes, whether the downloads run one after another or at once.
    buffers = PieceBuffers(keep=4)
    store = BlobStore(tmp_path)
    blobs = []
    for seed in range(4):
        data = hashlib.sha256(b"seed%d" % seed).digest() * (SIZE // 32)
        blobs.append((data, Digest.parse("sha256:" + hashlib.sha256(data).hexdigest())))

    async def fetch(data: bytes, digest: Digest) -> bytes:
        partial = await store.open_partial(digest, PieceLayout(len(data), 4 * MiB))
        config = PeerConfig(data_dir=tmp_path, upstream=UpstreamConfig(backoff=0.01))
        download = BlobDownload(
            digest, partial, store=store, config=config, swarm=None, stats=PeerStats(), buffers=buffers
        )
        reader = asyncio.create_task(read_all(download, 0, len(data) - 1))
        await download.run(MemorySource(data))
        return await reader

    assert await fetch(*blobs[0]) == blobs[0][0]
    assert await fetch(*blobs[1]) == blobs[1][0]
    together = await asyncio.gather(fetch(*blobs[2]), fetch(*blobs[3]))
    assert list(together) == [blobs[2][0], blobs[3][0]]
    for data, digest in blobs:
        assert store.complete_path(digest).read_bytes() == data


async def test_a_reader_arriving_while_the_blob_moves_into_the_store_gets_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The move into the store is atomic, but the download's result is set only after the directory's fsync: a
    # reader that opens the blob in between (seen under load in CI: clients cut off with 0 bytes) must find it.
    import peer.store

    fsync_dir = peer.store._fsync_dir
    moved = asyncio.Event()
    loop = asyncio.get_running_loop()

    def slow_fsync_dir(path: Path) -> None:
        loop.call_soon_threadsafe(moved.set)
        time.sleep(0.3)  # a busy disk
        fsync_dir(path)

    monkeypatch.setattr(peer.store, "_fsync_dir", slow_fsync_dir)
    data, digest = blob()
    download, store = await make_download(tmp_path, data, digest)
    running = asyncio.create_task(download.run(MemorySource(data)))
    await asyncio.wait_for(moved.wait(), 10)
    assert not download.partial.data_path.exists() and not download.result.done()
    assert await read_all(download, 0, len(data) - 1) == data
    await running
    assert store.stat(digest) == len(data)
