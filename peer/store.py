"""The host's blob store on disk: complete, verified blobs by digest, and partial ones being assembled.

Layout under the data directory:
  blobs/<algorithm>/<hex>          complete blobs, verified against their digest before they land here
  partial/<algorithm>-<hex>.data   a blob being assembled (preallocated to its full size where the file system can)
  partial/<algorithm>-<hex>.state  its verified pieces, for resuming after a restart
A blob lands by rename, so a reader never sees a half-written complete blob.
Disk space is managed by `quota.DiskQuota`: a download is admitted (evicting least-recently-used idle blobs if
it must) and its file preallocated before its first byte, so a full disk or quota is an OCI error up front.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from core.digest import Digest
from core.pieces import PieceLayout

from .partial import PartialBlob
from .quota import DiskQuota, InsufficientStorage, QuotaPolicy, is_no_space

log = logging.getLogger(__name__)


class BlobStore:
    def __init__(self, root: Path, quota: QuotaPolicy | None = None) -> None:
        self.root = root
        self.blobs_dir = root / "blobs"
        self.partial_dir = root / "partial"
        for path in (self.blobs_dir / "sha256", self.blobs_dir / "sha512", self.partial_dir):
            path.mkdir(parents=True, exist_ok=True)
        # Without a policy there is no quota, but a full disk still evicts idle blobs before refusing a download.
        self.quota = DiskQuota(self.blobs_dir, self.partial_dir, quota or QuotaPolicy())
        # Told of every complete blob evicted, so the peer can withdraw from that blob's swarm.
        self.on_evict: Callable[[Digest], None] | None = None

    def complete_path(self, digest: Digest) -> Path:
        # Digest.parse admits only [a-f0-9] hex, so the name cannot climb out of the store.
        return self.blobs_dir / digest.algorithm / digest.hex

    def stat(self, digest: Digest) -> int | None:
        """Size of the complete blob, or None when it is not here."""
        try:
            return self.complete_path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def touch(self, digest: Digest) -> None:
        """Mark a blob as just used, for least-recently-used eviction."""
        now = time.time()
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.complete_path(digest), (now, now))

    async def open_partial(self, digest: Digest, layout: PieceLayout) -> PartialBlob:
        """The partial blob to download into, with room for all of it; raises InsufficientStorage (507) if none."""
        base = self.partial_dir / f"{digest.algorithm}-{digest.hex}"
        data_path = base.with_suffix(".data")
        # Under the quota: above the high watermark, least-recently-used idle blobs go; or the blob is refused.
        self._evicted(await asyncio.to_thread(self.quota.admit, layout.blob_size, data_path))
        await self._preallocate(data_path, layout.blob_size)
        return await PartialBlob.open(data_path, base.with_suffix(".state"), layout)

    async def _preallocate(self, path: Path, size: int) -> None:
        """Reserve the blob's size on disk now: a full disk refuses the download before its first byte, instead
        of failing it (and every client streaming it) half-way."""
        try:
            await asyncio.to_thread(_preallocate, path, size)
            return
        except OSError as exc:
            if not is_no_space(exc):
                raise
        # The disk is fuller than the quota knows (other files on it, or no quota): make room once and retry.
        self._evicted(await asyncio.to_thread(self.quota.relieve, size, path))
        try:
            await asyncio.to_thread(_preallocate, path, size)
        except OSError as exc:
            if not is_no_space(exc):
                raise
            raise InsufficientStorage(f"no room for a blob of {size} bytes: the disk under the store is full") from exc

    def _evicted(self, digests: list[Digest]) -> None:
        for digest in digests:
            log.info("evicted %s from the store to make room", digest)
            if self.on_evict is not None:
                self.on_evict(digest)

    async def commit(self, digest: Digest, partial: PartialBlob) -> Path:
        """Move a verified partial blob into place, durably."""
        await partial.flush()
        partial.close()
        target = self.complete_path(digest)
        await asyncio.to_thread(os.replace, partial.data_path, target)
        partial.state_path.unlink(missing_ok=True)
        await asyncio.to_thread(_fsync_dir, target.parent)
        return target


def _preallocate(path: Path, size: int) -> None:
    """Allocate `size` bytes for the file at `path`; a file this call created is removed again if that fails."""
    existed = path.exists()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if size and hasattr(os, "posix_fallocate"):
            os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        os.close(fd)
        fd = -1
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):
            return  # a file system that cannot preallocate: the file stays sparse, as before
        if not existed:
            path.unlink(missing_ok=True)
        raise
    finally:
        if fd >= 0:
            os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
