"""A blob being assembled piece by piece in a sparse file, with the set of verified pieces beside it.

The state file records which pieces are verified and their digests, so that a restarted daemon can resume:
claimed pieces are hashed again before they are trusted (a crash may have lost writes the state recorded).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import aiofiles
import aiofiles.os

from core.digest import sha256_hex
from core.pieces import PieceLayout


class PartialBlob:
    def __init__(self, data_path: Path, state_path: Path, layout: PieceLayout) -> None:
        self.data_path = data_path
        self.state_path = state_path
        self.layout = layout
        self.mask = 0
        self.piece_digests: dict[int, str] = {}
        self._fd = os.open(data_path, os.O_RDWR | os.O_CREAT, 0o644)
        if os.fstat(self._fd).st_size != layout.blob_size:
            os.ftruncate(self._fd, layout.blob_size)

    @classmethod
    async def open(cls, data_path: Path, state_path: Path, layout: PieceLayout) -> PartialBlob:
        blob = cls(data_path, state_path, layout)
        await blob._resume()
        return blob

    @property
    def complete(self) -> bool:
        return self.mask == (1 << self.layout.count) - 1

    def has(self, index: int) -> bool:
        return bool(self.mask >> index & 1)

    def write_at(self, index: int, data: bytes | memoryview) -> None:
        """Write a piece's bytes (blocking; call from a worker thread). It counts only once `mark`ed."""
        os.pwrite(self._fd, data, self.layout.offset(index))

    def mark(self, index: int, digest_hex: str) -> None:
        """Record a written piece as verified: from now on it is read and served."""
        self.mask |= 1 << index
        self.piece_digests[index] = digest_hex

    async def read_piece(self, index: int) -> bytes:
        return await asyncio.to_thread(os.pread, self._fd, self.layout.length(index), self.layout.offset(index))

    async def save_state(self) -> None:
        state = {
            "size": self.layout.blob_size,
            "piece_size": self.layout.piece_size,
            "pieces": {str(i): d for i, d in self.piece_digests.items()},
        }
        tmp = self.state_path.with_suffix(".tmp")
        async with aiofiles.open(tmp, "w") as file:
            await file.write(json.dumps(state))
        await aiofiles.os.replace(tmp, self.state_path)

    async def flush(self) -> None:
        await asyncio.to_thread(os.fsync, self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def reset(self) -> None:
        """Forget every piece (they were verified against digests found wrong): nothing is read or served until
        stored again. The state file goes too, so that a restart does not resume them."""
        self.mask = 0
        self.piece_digests = {}
        self.state_path.unlink(missing_ok=True)

    def discard(self) -> None:
        self.close()
        for path in (self.data_path, self.state_path):
            path.unlink(missing_ok=True)

    async def _resume(self) -> None:
        try:
            async with aiofiles.open(self.state_path) as file:
                state = json.loads(await file.read())
        except (OSError, ValueError):
            return
        if not isinstance(state, dict) or state.get("size") != self.layout.blob_size:
            return
        if state.get("piece_size") != self.layout.piece_size:
            return
        pieces = state.get("pieces")
        if not isinstance(pieces, dict):
            return
        for key, digest_hex in pieces.items():
            try:
                index = int(key)
            except ValueError:
                continue
            if not 0 <= index < self.layout.count or not isinstance(digest_hex, str):
                continue
            data = await self.read_piece(index)
            if await asyncio.to_thread(sha256_hex, data) == digest_hex:
                self.mask |= 1 << index
                self.piece_digests[index] = digest_hex
