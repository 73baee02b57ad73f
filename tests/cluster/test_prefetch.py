"""An image manifest served starts its blobs' downloads; `--no-prefetch` turns that off."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.support.cluster import DamselflyCluster
from tests.support.images import BuiltImage, PushedImage, push_image
from tests.support.registry import RegistryServer

ACCEPT = [("Accept", "application/vnd.oci.image.manifest.v1+json")]


@pytest.fixture
def pushed(registry: RegistryServer, small_image: BuiltImage) -> PushedImage:
    image = push_image(small_image, registry.url, "test/pre", "v1")
    registry.reset_counts()
    return image


def blob_bytes(registry: RegistryServer) -> int:
    return registry.served_bytes(method="GET", path_contains="/blobs/")


def test_a_manifest_get_brings_its_blobs(tmp_path: Path, registry: RegistryServer, pushed: PushedImage) -> None:
    with DamselflyCluster(tmp_path / "c", upstream_url=registry.url, peers_count=1) as cluster:
        peer = cluster.peers[0]
        got = httpx.get(f"{peer.mirror_url}/v2/test/pre/manifests/v1", headers=ACCEPT, timeout=30, trust_env=False)
        assert got.status_code == 200
        deadline = time.monotonic() + 30
        while peer.stats()["bytes_from_upstream"] < pushed.total_blob_bytes and time.monotonic() < deadline:
            time.sleep(0.1)
        assert peer.stats()["bytes_from_upstream"] == pushed.total_blob_bytes
        for digest, _ in pushed.blobs:
            algorithm, hex_ = digest.split(":")
            assert (peer.data_dir / "blobs" / algorithm / hex_).exists()
        # The client's own blob requests now come from the store: the upstream sends nothing more.
        for digest, size in pushed.blobs:
            body = httpx.get(f"{peer.mirror_url}/v2/test/pre/blobs/{digest}", timeout=30, trust_env=False).content
            assert len(body) == size
    assert blob_bytes(registry) == pushed.total_blob_bytes


def test_no_prefetch_fetches_nothing_but_the_manifest(
    tmp_path: Path, registry: RegistryServer, pushed: PushedImage
) -> None:
    cluster = DamselflyCluster(
        tmp_path / "c", upstream_url=registry.url, peers_count=1, extra_peer_args=["--no-prefetch"]
    )
    with cluster:
        peer = cluster.peers[0]
        got = httpx.get(f"{peer.mirror_url}/v2/test/pre/manifests/v1", headers=ACCEPT, timeout=30, trust_env=False)
        assert got.status_code == 200
        time.sleep(1.0)
        assert peer.stats()["bytes_from_upstream"] == 0
    assert blob_bytes(registry) == 0
