"""What the peer hands the proxy for a blob: the complete file already open, or the live download.

One call (`PeerService.open_blob`) decides which, under the lock that starts downloads, so the proxy never looks
into the store and never opens a file the peer has not vouched for. Both kinds count what they serve in the peer's
own counters: the proxy never touches them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from io import FileIO

from .download import BlobDownload
from .stats import PeerStats

READ_CHUNK = 1024 * 1024


class StoredBlob:
    """A blob complete in the store, open for reading.

    Opened before the answer's status line goes out, so an eviction in between is an error before the first
    byte rather than a cut-off 200; held open until the last byte is sent, so the quota does not evict it
    meanwhile (peer/quota.py evicts no blob this process has open). The caller closes it.
    """

    def __init__(self, file: FileIO, stats: PeerStats) -> None:
        self.file = file
        self._stats = stats

    def sent_zerocopy(self, count: int) -> None:
        """The server sent `count` bytes of the file itself (sendfile)."""
        self._stats.bytes_served_local += count
        self._stats.bytes_served_zerocopy += count

    async def read_range(self, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes start..end (inclusive), read in chunks off the event loop."""
        fd = self.file.fileno()
        position = start
        while position <= end:
            chunk = await asyncio.to_thread(os.pread, fd, min(READ_CHUNK, end - position + 1), position)
            if not chunk:
                raise OSError("blob shorter than its recorded size")
            position += len(chunk)
            self._stats.bytes_served_local += len(chunk)
            yield chunk

    def close(self) -> None:
        self.file.close()


class LiveBlob:
    """A blob still arriving: readers follow the download as its pieces are verified."""

    def __init__(self, download: BlobDownload, stats: PeerStats) -> None:
        self.download = download
        self._stats = stats

    async def wait_readable(self, position: int) -> None:
        """Until the byte at `position` can be read; raises DownloadFailed if the download failed first."""
        await self.download.wait_readable(position)

    async def verified(self) -> None:
        """Until the whole blob has passed its digest; raises DownloadFailed if it did not."""
        await self.download.verified()

    async def read_range(self, start: int, end: int) -> AsyncIterator[bytes]:
        async for chunk in self.download.read_range(start, end):
            self._stats.bytes_served_local += len(chunk)
            yield chunk


BlobHandle = StoredBlob | LiveBlob


def open_complete(path: os.PathLike[str] | str, size: int) -> FileIO | None:
    """The complete blob at `path`, open for reading; None when it is not there whole."""
    try:
        # Unbuffered: the bytes are read by sendfile or pread, never through a Python buffer.
        file = open(path, "rb", buffering=0)  # noqa: SIM115 (the handle's owner closes it)
    except FileNotFoundError:
        return None
    if os.fstat(file.fileno()).st_size != size:
        file.close()
        return None
    return file
