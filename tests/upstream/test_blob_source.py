"""`BlobSource` against the real registry: blob bodies come through the raw client, byte-exact, for any range;
errors stay errors; without a raw client httpx does the same job."""

from __future__ import annotations

import hashlib
import os

import httpx
import pytest

from tests.faults.helpers import push_blob
from tests.support.registry import RegistryServer
from upstream.blob import BlobSource, ChunkedBody
from upstream.client import RegistryClient, UpstreamError
from upstream.config import UpstreamConfig
from upstream.raw_http import RawHttpClient, RawResponse
from upstream.registry import UpstreamRegistry

REPO = "source/test"


async def read_range(source: BlobSource, start: int, end: int, step: int) -> tuple[bytes, type]:
    out = bytearray(end - start + 1)
    view = memoryview(out)
    async with source.open_range(start, end) as body:
        kind = type(body)
        got = 0
        while got < len(out):
            filled = await body.fill(view[got : got + step])
            assert filled > 0
            got += filled
    return bytes(out), kind


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "httpx"])
async def test_ranges_of_a_blob_come_back_exactly(registry: RegistryServer, raw: bool) -> None:
    data = os.urandom(3 * (1 << 20) + 777)
    digest = push_blob(registry.url, REPO, data)
    async with httpx.AsyncClient(trust_env=False) as http:
        raw_client = RawHttpClient(ssl_context=None, connect_timeout=5, read_timeout=30) if raw else None
        config = UpstreamConfig(attempts=2, backoff=0.01)
        client = RegistryClient(UpstreamRegistry("r", registry.url), http, config, raw=raw_client)
        source = BlobSource(client, REPO, digest, None)
        for start, end, step in ((0, len(data) - 1, 1 << 20), (1, 100, 7), (len(data) - 10, len(data) - 1, 4)):
            got, kind = await read_range(source, start, end, step)
            assert hashlib.sha256(got).digest() == hashlib.sha256(data[start : end + 1]).digest()
            assert kind is (RawResponse if raw else ChunkedBody)
        missing = BlobSource(client, REPO, "sha256:" + "0" * 64, None)
        with pytest.raises(UpstreamError, match="404"):
            async with missing.open_range(0, 10):
                pass
