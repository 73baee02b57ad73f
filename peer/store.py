"""The host's blob store on disk: complete, verified blobs by digest, and partial ones being assembled.

Layout under the data directory:
  blobs/<algorithm>/<hex>          complete blobs, verified against their digest before they land here
  partial/<algorithm>-<hex>.data   a blob being assembled (sparse file)
  partial/<algorithm>-<hex>.state  its verified pieces, for resuming after a restart
A blob lands by rename, so a reader never sees a half-written complete blob.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

from core.digest import Digest
from core.pieces import PieceLayout

from .partial import PartialBlob


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs_dir = root / "blobs"
        self.partial_dir = root / "partial"
        for path in (self.blobs_dir / "sha256", self.blobs_dir / "sha512", self.partial_dir):
            path.mkdir(parents=True, exist_ok=True)

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
        base = self.partial_dir / f"{digest.algorithm}-{digest.hex}"
        return await PartialBlob.open(base.with_suffix(".data"), base.with_suffix(".state"), layout)

    async def commit(self, digest: Digest, partial: PartialBlob) -> Path:
        """Move a verified partial blob into place, durably."""
        await partial.flush()
        partial.close()
        target = self.complete_path(digest)
        await asyncio.to_thread(os.replace, partial.data_path, target)
        partial.state_path.unlink(missing_ok=True)
        await asyncio.to_thread(_fsync_dir, target.parent)
        return target

    def partial_digests(self) -> list[Digest]:
        found = []
        for path in self.partial_dir.glob("*.state"):
            algorithm, _, hex_ = path.stem.partition("-")
            try:
                found.append(Digest.parse(f"{algorithm}:{hex_}"))
            except ValueError:
                continue
        return found


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
