"""Per-host rate limits hold: the source fetch and piece uploads never exceed the configured rate."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import httpx

from tests.support.cluster import DamselflyCluster
from tests.support.registry import RegistryServer

MiB = 1 << 20
RATE = 8 * 10**6  # 8 MB/s
BLOB = 12 * MiB


def push_blob(registry: RegistryServer, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with httpx.Client(timeout=60, trust_env=False) as client:
        start = client.post(f"{registry.url}/v2/test/blob/blobs/uploads/")
        location = start.headers["location"]
        url = location if location.startswith("http") else registry.url + location
        # The upload location carries its own query (`_state`): the digest is added to it, not put instead.
        separator = "&" if "?" in url else "?"
        put = client.put(f"{url}{separator}digest={digest}", content=data)
        assert put.status_code == 201, put.text
    return digest


def timed_get(url: str) -> tuple[float, bytes]:
    started = time.monotonic()
    body = httpx.get(url, timeout=120, trust_env=False).content
    return time.monotonic() - started, body


def test_source_and_upload_rates_hold(tmp_path: Path, registry: RegistryServer) -> None:
    data = bytes(range(256)) * (BLOB // 256)
    digest = push_blob(registry, data)
    limits = ["--source-rate", str(RATE), "--upload-rate", str(RATE)]
    with DamselflyCluster(tmp_path / "c", upstream_url=registry.url, peers_count=2, extra_peer_args=limits) as cl:
        elapsed, body = timed_get(f"{cl.peers[0].mirror_url}/v2/test/blob/blobs/{digest}")
        assert body == data
        # 12.6 MB at 8 MB/s, less the bucket's burst (a tenth of a second): no faster than 1.4 s.
        assert elapsed >= 1.4, f"source fetch took {elapsed:.2f}s: the source limit did not hold"
        elapsed, body = timed_get(f"{cl.peers[1].mirror_url}/v2/test/blob/blobs/{digest}")
        assert body == data
        assert cl.peers[1].stats()["bytes_from_peers"] == len(data)
        assert elapsed >= 1.4, f"peer transfer took {elapsed:.2f}s: the upload limit did not hold"
