"""Building images offline with umoci, pushing them, and multi-arch indexes."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.support.images import (
    OCI_INDEX,
    BuiltImage,
    ImageCache,
    build_image,
    fetch_manifest,
    push_image,
    push_index,
)
from tests.support.registry import RegistryServer
from tests.support.skopeo import skopeo_copy, verify_dir_blobs


def _layout_blob(built: BuiltImage, digest: str) -> bytes:
    return (built.layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def test_layers_are_complete_single_file_tars(small_image: BuiltImage) -> None:
    manifest = json.loads(_layout_blob(small_image, small_image.manifest_digest))
    config = json.loads(_layout_blob(small_image, manifest["config"]["digest"]))
    assert (config["architecture"], config["os"]) == ("amd64", "linux")
    assert len(manifest["layers"]) == 3
    for i, (layer, size) in enumerate(zip(manifest["layers"], small_image.layer_sizes, strict=True)):
        data = gzip.decompress(_layout_blob(small_image, layer["digest"]))
        # A well-formed tar: strict parsing reads to the end-of-archive marker.
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:", errorlevel=2) as tar:
            members = tar.getmembers()
            assert [(m.name, m.size) for m in members] == [(f"layer{i}.bin", size)]
            payload = tar.extractfile(members[0])
            assert payload is not None
            # Random bytes do not compress: the blob is not smaller than its payload.
            assert layer["size"] > size
            assert len(gzip.compress(payload.read(1 << 16))) > 1 << 16
    # umoci gc removed the intermediate manifests and configs.
    blobs = {p.name for p in (small_image.layout / "blobs" / "sha256").iterdir()}
    assert len(blobs) == 2 + 3


def test_cache_builds_once(image_cache: ImageCache, small_image: BuiltImage) -> None:
    assert image_cache.get([1 << 20, 2 << 20, 3 << 20]) is small_image


def test_seed_makes_shared_layers(tmp_path: Path) -> None:
    a = build_image(tmp_path / "a", [4096, 100], seed=7)
    b = build_image(tmp_path / "b", [4096], seed=7, architecture="arm64")
    c = build_image(tmp_path / "c", [4096], seed=8)

    def layers(built: BuiltImage) -> list[str]:
        manifest = json.loads(_layout_blob(built, built.manifest_digest))
        return [layer["digest"] for layer in manifest["layers"]]

    assert layers(a)[0] == layers(b)[0] != layers(c)[0]
    assert a.manifest_digest != b.manifest_digest


def test_multi_arch_index(
    registry: RegistryServer, small_image: BuiltImage, image_cache: ImageCache, tmp_path: Path
) -> None:
    arm = image_cache.get([1 << 20], architecture="arm64")
    amd64 = push_image(small_image, registry.url, "test/multi", "amd64")
    arm64 = push_image(arm, registry.url, "test/multi", "arm64")
    assert (arm64.architecture, arm64.os) == ("arm64", "linux")

    index = push_index(registry.url, "test/multi", "v1", [amd64, arm64])
    body, media_type, digest = fetch_manifest(registry.url, "test/multi", "v1")
    assert (media_type, digest) == (OCI_INDEX, index.digest)
    platforms = [m["platform"] for m in json.loads(body)["manifests"]]
    assert platforms == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux"},
    ]
    assert index.total_blob_bytes == amd64.total_blob_bytes + arm64.total_blob_bytes

    # A client picks its platform's image out of the index.
    for image in (amd64, arm64):
        out = tmp_path / image.architecture
        skopeo_copy(
            f"{registry.host}/test/multi:v1",
            out,
            extra_args=["--override-arch", image.architecture],
            timeout=60,
        )
        verify_dir_blobs(out, image)


def test_index_needs_images_in_the_same_repo(registry: RegistryServer, small_image: BuiltImage) -> None:
    other = push_image(small_image, registry.url, "test/other", "v1")
    with pytest.raises(ValueError, match="not in"):
        push_index(registry.url, "test/multi", "v1", [other])
