"""One blob at the upstream, read by byte range into the caller's buffers (a `RangeSource` of the download).

The body comes through `raw_http` where the upstream frames it with Content-Length, else through httpx
(`ChunkedBody`). An upstream that ignores `Range` and sends the whole blob is read from where the range starts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from core import registry_api

from .client import RegistryClient, UpstreamError
from .raw_http import Progress, RawResponse


@dataclass(slots=True)
class BlobSource:
    """Where one blob can be had from the upstream, with the credentials of the request that asked for it."""

    client: RegistryClient
    repository: str
    digest: str
    client_auth: str | None

    @asynccontextmanager
    async def open_range(self, start: int, end: int) -> AsyncIterator[RawResponse | ChunkedBody]:
        """Bytes [start, end] (inclusive) of the blob; raises UpstreamError if not possible."""
        path = registry_api.BLOB.path(name=self.repository, digest=self.digest)
        headers = [("Range", f"bytes={start}-{end}")]
        raw = await self.client.get_raw(path, client_auth=self.client_auth, headers=headers)
        if raw is not None and raw.framed and raw.status_code in (200, 206):
            try:
                if raw.status_code == 200:
                    await _discard(raw, start)  # the upstream ignored Range: skip to where we want to be
                yield raw
            finally:
                await raw.aclose()
            return
        if raw is not None:
            await raw.aclose()
            if raw.status_code not in (200, 206):
                raise UpstreamError(f"upstream answered {raw.status_code} for the blob")
        # No raw transport, or a body not framed by Content-Length: httpx handles it.
        response = await self.client.send("GET", path, client_auth=self.client_auth, headers=headers, stream=True)
        try:
            if response.status_code == 206:
                yield ChunkedBody(response.aiter_raw())
            elif response.status_code == 200:
                yield ChunkedBody(_skip(response.aiter_raw(), start))
            else:
                raise UpstreamError(f"upstream answered {response.status_code} for the blob")
        finally:
            await response.aclose()


class ChunkedBody:
    """A body over a stream of chunks (httpx's, or a test's), copying them into the buffers `fill` is given."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._left = memoryview(b"")

    async def fill(self, view: memoryview, progress: Progress | None = None) -> int:
        filled = 0
        while filled < len(view):
            if not self._left:
                try:
                    self._left = memoryview(await anext(self._chunks))
                except StopAsyncIteration:
                    break
                continue
            take = min(len(view) - filled, len(self._left))
            view[filled : filled + take] = self._left[:take]
            self._left = self._left[take:]
            filled += take
            if progress is not None:
                progress(filled)
        return filled


async def _discard(body: RawResponse, count: int) -> None:
    scratch = memoryview(bytearray(min(count, 1 << 20)))
    while count > 0:
        step = scratch[: min(count, len(scratch))]
        if await body.fill(step) < len(step):
            raise UpstreamError("the upstream ended the blob before the range asked for")
        count -= len(step)


async def _skip(chunks: AsyncIterator[bytes], count: int) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        if count >= len(chunk):
            count -= len(chunk)
            continue
        yield chunk[count:] if count else chunk
        count = 0
