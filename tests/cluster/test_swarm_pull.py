"""Issue [1]: several hosts pull the same image through their proxies; the upstream sends each blob about once."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.cluster import DamselflyCluster
from tests.support.fixtures import require_binary
from tests.support.images import ImageCache, PushedImage, push_image
from tests.support.registry import RegistryServer
from tests.support.skopeo import mirror_dropin, skopeo_copy, unique_registry_name, verify_dir_blobs

MiB = 1 << 20
# Several pieces per layer (4 MiB pieces), and a layer smaller than one piece.
LAYERS = (3 * MiB, 9 * MiB, 14 * MiB)


@pytest.fixture
def pushed(registry: RegistryServer, image_cache: ImageCache) -> PushedImage:
    require_binary("skopeo")
    image = push_image(image_cache.get(LAYERS), registry.url, "test/app", "v1")
    registry.reset_counts()
    return image


def upstream_blob_bytes(registry: RegistryServer) -> int:
    return registry.served_bytes(method="GET", path_contains="/blobs/")


def test_three_hosts_pull_at_once_and_the_upstream_sends_each_blob_about_once(
    tmp_path: Path, registry: RegistryServer, pushed: PushedImage
) -> None:
    with DamselflyCluster(tmp_path / "cluster", upstream_url=registry.url, peers_count=3) as cluster:
        outs = [tmp_path / f"out{i}" for i in range(3)]
        with ThreadPoolExecutor(3) as pool:
            futures = [
                pool.submit(skopeo_copy, f"{peer.mirror_host}/test/app:v1", out)
                for peer, out in zip(cluster.peers, outs, strict=True)
            ]
            for future in futures:
                future.result()
        for out in outs:
            verify_dir_blobs(out, pushed)
        served = upstream_blob_bytes(registry)
        stats = [peer.stats() for peer in cluster.peers]
    assert served <= 1.1 * pushed.total_blob_bytes, f"upstream served {served} for {pushed.total_blob_bytes}"
    # The swarm really moved bytes between hosts: peers got from each other what the upstream did not send.
    assert sum(s["bytes_from_peers"] for s in stats) >= 1.5 * pushed.total_blob_bytes
    assert sum(s["fallbacks"] for s in stats) == 0


def test_blobs_by_http_range_head_and_concurrent_readers(
    tmp_path: Path, registry: RegistryServer, pushed: PushedImage
) -> None:
    digest, size = pushed.layers[2]
    whole = httpx.get(f"{registry.url}/v2/test/app/blobs/{digest}", timeout=30).content
    registry.reset_counts()
    with DamselflyCluster(tmp_path / "cluster", upstream_url=registry.url, peers_count=2) as cluster:
        base = f"{cluster.peers[0].mirror_url}/v2/test/app/blobs/{digest}"
        with httpx.Client(timeout=60, trust_env=False) as client:
            head = client.head(base)
            assert head.status_code == 200
            assert head.headers["content-length"] == str(size)
            assert head.headers["docker-content-digest"] == digest
            # A cold range in the middle of the blob waits for just its pieces.
            ranged = client.get(base, headers={"Range": "bytes=5000000-5999999"})
            assert ranged.status_code == 206
            assert ranged.headers["content-range"] == f"bytes 5000000-5999999/{size}"
            assert ranged.content == whole[5000000:6000000]
            with ThreadPoolExecutor(4) as pool:
                bodies = list(pool.map(lambda _: client.get(base).content, range(4)))
            assert all(hashlib.sha256(b).hexdigest() == digest.split(":")[1] for b in bodies)
            beyond = client.get(base, headers={"Range": f"bytes={size}-"})
            assert beyond.status_code == 416
            assert beyond.json()["errors"][0]["code"] == "RANGE_NOT_SATISFIABLE"
            # The second host gets it from the first, not from the upstream.
            other = client.get(f"{cluster.peers[1].mirror_url}/v2/test/app/blobs/{digest}")
            assert hashlib.sha256(other.content).hexdigest() == digest.split(":")[1]
            assert cluster.peers[1].stats()["bytes_from_upstream"] == 0
    assert upstream_blob_bytes(registry) <= 1.1 * size


def test_manifests_pass_through_with_every_accept_line(
    tmp_path: Path, registry: RegistryServer, pushed: PushedImage
) -> None:
    with DamselflyCluster(tmp_path / "cluster", upstream_url=registry.url, peers_count=1) as cluster:
        mirror = cluster.peers[0].mirror_url
        accept = [
            ("Accept", "application/vnd.docker.distribution.manifest.v2+json"),
            ("Accept", "application/vnd.oci.image.manifest.v1+json"),
        ]
        with httpx.Client(timeout=30, trust_env=False) as client:
            ping = client.get(f"{mirror}/v2/")
            assert ping.status_code == 200
            assert ping.headers["docker-distribution-api-version"] == "registry/2.0"
            by_tag = client.get(f"{mirror}/v2/test/app/manifests/v1", headers=accept)
            assert by_tag.status_code == 200
            assert by_tag.content == pushed.manifest_bytes
            assert by_tag.headers["content-type"] == pushed.media_type
            assert by_tag.headers["docker-content-digest"] == pushed.manifest_digest
            head = client.head(f"{mirror}/v2/test/app/manifests/{pushed.manifest_digest}", headers=accept)
            assert head.status_code == 200
            assert head.headers["content-length"] == str(pushed.manifest_size)
            missing = client.get(f"{mirror}/v2/test/app/manifests/nope", headers=accept)
            assert missing.status_code == 404
            assert missing.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
            unknown_blob = client.get(f"{mirror}/v2/test/app/blobs/sha256:{'0' * 64}")
            assert unknown_blob.status_code == 404
            assert unknown_blob.json()["errors"][0]["code"] == "BLOB_UNKNOWN"


def test_skopeo_through_a_mirror_for_a_registry_name_that_does_not_resolve(
    tmp_path: Path, registry: RegistryServer, pushed: PushedImage, require_root: None
) -> None:
    """With a made-up registry name, a pull can only succeed through the mirror: no silent fallback."""
    name = unique_registry_name()
    config = f'[[registry]]\nname = "{name}"\nurl = "{registry.url}"\n'
    cluster = DamselflyCluster(tmp_path / "cluster", upstream_url=registry.url, peers_count=1, config_text=config)
    with cluster, mirror_dropin(name, f"{cluster.peers[0].mirror_host}/{name}"):
        skopeo_copy(f"{name}/test/app:v1", tmp_path / "out")
    verify_dir_blobs(tmp_path / "out", pushed)
    assert upstream_blob_bytes(registry) == pushed.total_blob_bytes
